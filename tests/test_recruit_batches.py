"""A batch of recruits (an import's `members_recruited`) books exactly what one
`member_recruited` per member in the same order books: recruit rows and states, bounties,
tier payments, months. Compared with the per-member code as it was before batches
(`_one_by_one`, kept here as the reference) and with today's `on_recruit`."""

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from guideapp.commissions import ledger
from guideapp.commissions import rules as maths
from guideapp.commissions.models import CommissionEntry, CommissionRecruit
from guideapp.commissions.recruits import on_recruit, record_recruits
from guideapp.db import utcnow
from guideapp.members.binding import bind
from guideapp.members.identity import create_member
from guideapp.org.models import Store
from tests.commission_factories import assert_counts_kept, close, make_world, phone, recount, rule

START = datetime(2026, 9, 1, tzinfo=timezone.utc)
HOURS = 24 * 91  # recruits fall in September, October and November (Asia/Shanghai months)


def _one_by_one(session, *, member, guide, source, campaign_id=None, at=None):
    """on_recruit before batches (issue 14), verbatim but for the names: the reference."""
    if guide is None or guide.role != "guide" or guide.store_id is None:
        return None
    existing = session.scalar(
        select(CommissionRecruit).where(
            CommissionRecruit.tenant_id == member.tenant_id,
            CommissionRecruit.member_id == member.id,
        )
    )
    if existing is not None:
        return existing
    at = at or member.bound_at or utcnow()
    ev = ledger.event(session, member.tenant_id, at)
    person = ledger.resolve(session, member)
    state = "counted"
    if ledger.is_staff_phone(session, member.phone, person.phone):
        state = "staff"
    elif session.scalar(
        select(func.count(CommissionRecruit.id)).where(
            CommissionRecruit.tenant_id == member.tenant_id,
            CommissionRecruit.person_id == person.id,
            CommissionRecruit.state == "counted",
        )
    ):
        state = "duplicate"
    recruit = CommissionRecruit(
        tenant_id=member.tenant_id,
        member_id=member.id,
        person_id=person.id,
        guide_id=guide.id,
        store_id=guide.store_id,
        source=source,
        campaign_id=campaign_id,
        state=state,
        month=ev.month,
        recruited_at=at,
    )
    session.add(recruit)
    session.flush()
    if state != "counted":
        return recruit
    store = session.get_one(Store, guide.store_id)
    for r in ledger.applicable_rules(
        session, ev=ev, kind="recruit_bounty", store=store, campaign_id=campaign_id
    ):
        ledger.earn(
            session,
            ev,
            rule=r,
            guide=guide,
            kind="bounty",
            amount_fen=r.amount_fen or 0,
            source_type="recruit",
            source_id=member.id,
            member_id=member.id,
        )
    count = session.execute(
        select(func.count(CommissionRecruit.id)).where(
            CommissionRecruit.guide_id == guide.id,
            CommissionRecruit.month == ev.month,
            CommissionRecruit.state == "counted",
        )
    ).scalar_one()
    for r in ledger.applicable_rules(
        session, ev=ev, kind="tier_bonus", store=store, campaign_id=campaign_id
    ):
        for step in maths.tiers_reached(r.tiers, count):
            source_id = f"{guide.id}:{ev.month}:{r.rule_key}:{step['recruits']}"
            paid = session.scalar(
                select(func.count(CommissionEntry.id)).where(
                    CommissionEntry.tenant_id == ev.tenant_id,
                    CommissionEntry.source_type == "tier",
                    CommissionEntry.source_id == source_id,
                )
            )
            if not paid:
                ledger.earn(
                    session,
                    ev,
                    rule=r,
                    guide=guide,
                    kind="tier",
                    amount_fen=int(step["bonus_fen"]),
                    source_type="tier",
                    source_id=source_id,
                    member_id=None,
                    basis_fen=count,
                )
    return recruit


early = st.sampled_from([-10, -10, 0, HOURS // 3]) | st.integers(-10, HOURS)  # rule starts
moment = st.one_of(st.none(), st.integers(0, HOURS).map(lambda h: START + timedelta(hours=h)))
member_spec = st.fixed_dictionaries(
    {
        "phone": st.sampled_from(["fresh"] * 9 + ["guide0", "guide2", "hq"]),
        "merged_into": st.none() | st.integers(0, 3),  # an earlier member's, if any: one person
        "bound_at": st.integers(0, HOURS),
        "guide": st.integers(0, 2),
    }
)
bounty_spec = st.fixed_dictionaries(
    {
        "amount_fen": st.integers(0, 900),
        "cap_fen": st.one_of(st.none(), st.integers(0, 2000)),
        "scope": st.sampled_from(["tenant"] * 3 + ["store", "region", "campaign"]),
        "since": early,
        "until": st.none() | st.none() | st.integers(0, HOURS),
        "active": st.sampled_from([True, True, True, False]),
        "new_version": st.one_of(st.none(), st.tuples(st.integers(0, HOURS), st.integers(0, 900))),
    }
)
tier_spec = st.fixed_dictionaries(
    {
        "tiers": st.lists(
            st.fixed_dictionaries(
                {"recruits": st.integers(1, 4), "bonus_fen": st.integers(0, 3000)}
            ),
            min_size=1,
            max_size=3,
            unique_by=lambda t: t["recruits"],
        ),
        "cap_fen": st.one_of(st.none(), st.integers(0, 4000)),
        "scope": st.sampled_from(["tenant", "store"]),
        "since": early,
    }
)
recruit_spec = st.tuples(st.integers(0, 7), st.integers(0, 3), moment)  # guide 3: HQ
scenario = st.fixed_dictionaries(
    {
        "members": st.lists(member_spec, min_size=1, max_size=8),
        "bounties": st.lists(bounty_spec, min_size=1, max_size=2),
        "tiers": st.lists(tier_spec, min_size=1, max_size=2),
        "before": st.lists(recruit_spec, max_size=4),  # recruited earlier, one by one
        "close_september": st.booleans(),
        "batch": st.lists(recruit_spec, min_size=1, max_size=14),
    }
)


class Scenario:
    def __init__(self, session, spec):
        self.s, self.w = session, make_world(session)
        w = self.w
        self.recruiters = [*w.guides, w.hq]
        staff = {"guide0": w.guides[0].phone, "guide2": w.guides[2].phone, "hq": w.hq.phone}
        for b in spec["bounties"]:
            self._rule("recruit_bounty", b, amount_fen=b["amount_fen"], cap_fen=b["cap_fen"])
        for t in spec["tiers"]:
            self._rule("tier_bonus", t, tiers=t["tiers"], cap_fen=t["cap_fen"])
        self.members, used = [], set()
        for i, m in enumerate(spec["members"]):
            number = staff.get(m["phone"]) if m["phone"] not in used else None
            used.add(m["phone"])
            member = create_member(
                session,
                tenant_id=w.tenant_id,
                phone=number or phone(),
                name=f"会员{i}",
                source_channel="store_scan",
            )
            bind(
                session,
                member=member,
                guide=w.guides[m["guide"]],
                reason="recruited",
                now=START + timedelta(hours=m["bound_at"]),
            )
            if m["merged_into"] is not None and m["merged_into"] < i:
                member.merged_into_id = self.members[m["merged_into"]].id
            self.members.append(member)
        session.flush()
        for item in spec["before"]:
            _one_by_one(session, **self.kwargs(item))
        recount(session, w.tenant_id)  # the reference writes no counts: as the migration does
        if spec["close_september"]:
            close(session, w, "2026-09")

    def _rule(self, kind, spec, **values):
        w = self.w
        scope_id = {
            "store": w.stores[0].id,
            "region": w.region_id,
            "campaign": "c" * 32,
            "tenant": None,
        }[spec["scope"]]
        created = rule(
            self.s,
            w,
            kind=kind,
            scope=spec["scope"],
            scope_id=scope_id,
            since=START + timedelta(hours=spec["since"]),
            effective_until=(
                START + timedelta(hours=spec["until"]) if spec.get("until") is not None else None
            ),
            active=spec.get("active", True),
            **values,
        )
        if spec.get("new_version"):  # a new amount from a later moment, same rule
            hours, amount = spec["new_version"]
            rule(
                self.s,
                w,
                kind=kind,
                rule_key=created.rule_key,
                version=2,
                scope=spec["scope"],
                scope_id=scope_id,
                since=START + timedelta(hours=hours),
                **{**values, "amount_fen": amount},
            )

    def kwargs(self, item) -> dict:
        index, recruiter, at = item
        return {
            "member": self.members[index % len(self.members)],
            "guide": self.recruiters[recruiter],
            "source": "import",
            "at": at,
        }

    def ledger(self):
        s, tenant_id = self.s, self.w.tenant_id
        s.expire_all()
        recruits = s.execute(
            select(
                CommissionRecruit.member_id,
                CommissionRecruit.person_id,
                CommissionRecruit.guide_id,
                CommissionRecruit.store_id,
                CommissionRecruit.source,
                CommissionRecruit.campaign_id,
                CommissionRecruit.state,
                CommissionRecruit.month,
                CommissionRecruit.recruited_at,
            ).where(CommissionRecruit.tenant_id == tenant_id)
        ).all()
        entries = s.execute(
            select(
                CommissionEntry.guide_id,
                CommissionEntry.store_id,
                CommissionEntry.member_id,
                CommissionEntry.rule_id,
                CommissionEntry.kind,
                CommissionEntry.source_type,
                CommissionEntry.source_id,
                CommissionEntry.amount_fen,
                CommissionEntry.basis_fen,
                CommissionEntry.event_at,
                CommissionEntry.accounting_month,
            ).where(CommissionEntry.tenant_id == tenant_id)
        ).all()
        return sorted(map(tuple, recruits), key=repr), sorted(map(tuple, entries), key=repr)

    def outcome(self, run):
        savepoint = self.s.begin_nested()
        try:
            run()
            return self.ledger()
        finally:
            savepoint.rollback()
            self.s.expire_all()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=scenario)
def test_a_batch_books_what_one_recruit_at_a_time_books(session, spec):
    outer = session.begin_nested()
    try:
        world = Scenario(session, spec)
        calls = [world.kwargs(item) for item in spec["batch"]]
        batch = [
            (c["member"].id, c["guide"].id, c["at"]) for c in calls
        ]  # the import's (member id, guide id, at)

        def as_batch():
            record_recruits(session, tenant_id=world.w.tenant_id, recruits=batch, source="import")
            assert_counts_kept(session, world.w.tenant_id)

        def reference():
            for c in calls:
                _one_by_one(session, **c)

        def today():
            for c in calls:
                on_recruit(session, **c)
            assert_counts_kept(session, world.w.tenant_id)

        expected = world.outcome(reference)
        assert world.outcome(as_batch) == expected
        assert world.outcome(today) == expected
        recruits, entries = expected
        for state in sorted({r[6] for r in recruits}):
            event(f"recruit state {state}")
        for kind in sorted({e[4] for e in entries}):
            event(f"ledger has {kind}")
    finally:
        outer.rollback()
