"""Recruits into the ledger: POST /members or a scan announces one member, an import a batch;
both run `record_recruits`, so a recruit books the same whichever door it came through.

A batch costs a fixed number of statements (each IN list chunked at reads.BATCH ids): the
guides, the members and the persons they resolve to, the recruits already there, staff
phones, persons already counted, the rule versions, the months' counts (month_counts, locked
for the batch), tiers already paid and caps used; then one INSERT of recruits, one move of
the counts and one INSERT of entries. The batch is walked in its
order with those figures kept current, so it books exactly what one call per member in that
order would (tests/test_recruit_batches.py holds it to that).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.commissions import ledger, month_counts
from guideapp.commissions import rules as maths
from guideapp.commissions.models import CommissionEntry, CommissionRecruit, CommissionRule
from guideapp.commissions.reads import people, rows_in, used_under_caps
from guideapp.db import insert_rows, new_id, utcnow
from guideapp.members.models import Member
from guideapp.org.models import Staff, Store

Recruit = tuple[str, str, datetime | None]  # (member id, guide id, when: None = when bound)


def on_recruit(
    session: Session,
    *,
    member: Member,
    guide: Staff | None,
    source: str,
    campaign_id: str | None = None,
    at=None,
    **_ignored,
) -> CommissionRecruit | None:
    """`member_recruited`: the batch of one. Returns the member's recruit (None when the
    recruiter is no guide of a store)."""
    if guide is None or guide.role != "guide" or guide.store_id is None:
        return None
    record_recruits(
        session,
        tenant_id=member.tenant_id,
        recruits=[(member.id, guide.id, at)],
        source=source,
        campaign_id=campaign_id,
    )
    return session.scalar(
        select(CommissionRecruit).where(
            CommissionRecruit.tenant_id == member.tenant_id,
            CommissionRecruit.member_id == member.id,
        )
    )


def on_members_recruited(
    session: Session,
    *,
    tenant_id: str,
    recruits: Iterable[Recruit],
    source: str,
    campaign_id: str | None = None,
    **_ignored,
) -> None:
    """`members_recruited`: an import's batch, booked set-based."""
    record_recruits(
        session, tenant_id=tenant_id, recruits=recruits, source=source, campaign_id=campaign_id
    )


def record_recruits(
    session: Session,
    *,
    tenant_id: str,
    recruits: Iterable[Recruit],
    source: str,
    campaign_id: str | None = None,
) -> None:
    """Record each recruit once per member (later repeats are replays); a person's first
    counted recruit pays the bounty, then every tier step the guide's month count reaches.
    Staff phones never count; a person counted before is a duplicate."""
    wanted = list(recruits)
    guides = {
        g.id: g
        for g in rows_in(
            session,
            select(Staff.id, Staff.store_id, Store.region_id)
            .join(Store, Store.id == Staff.store_id)
            .where(Staff.tenant_id == tenant_id, Staff.role == "guide"),
            Staff.id,
            {guide_id for _, guide_id, _ in wanted},
        )
    }
    members = people(session, {m for m, g, _ in wanted if g in guides})
    recorded = set(
        rows_in(
            session,
            select(CommissionRecruit.member_id).where(CommissionRecruit.tenant_id == tenant_id),
            CommissionRecruit.member_id,
            members,
            scalars=True,
        )
    )
    now, fresh = utcnow(), []
    for member_id, guide_id, at in wanted:
        if guide_id not in guides or member_id not in members or member_id in recorded:
            continue  # no guide of a store, or a replayed recruitment
        recorded.add(member_id)
        member = members[member_id]
        fresh.append((member, guides[guide_id], at or member.bound_at or now))
    if not fresh:
        return
    evs = ledger.events(session, tenant_id, {at for *_, at in fresh})
    book = _Book(session, tenant_id, fresh, evs, campaign_id)
    recruit_rows = []
    for member, guide, at in fresh:
        ev, person = evs[at], member.person
        if {member.phone, person.phone} & book.staff_phones:
            state = "staff"
        elif person.id in book.counted:
            state = "duplicate"
        else:
            state = "counted"
        recruit_rows.append(
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "member_id": member.id,
                "person_id": person.id,
                "guide_id": guide.id,
                "store_id": guide.store_id,
                "source": source,
                "campaign_id": campaign_id,
                "state": state,
                "month": ev.month,
                "recruited_at": at,
            }
        )
        if state == "counted":
            book.count(member, guide, ev)
    insert_rows(session, CommissionRecruit.__table__, recruit_rows)
    month_counts.add(session, tenant_id, book.counted_now)
    ledger.write_many(session, book.entries)


class _Book:
    """What the batch's earnings depend on, read once, and kept current as it pays."""

    def __init__(self, session: Session, tenant_id: str, fresh: list, evs: dict, campaign_id):
        self.campaign_id = campaign_id
        self.entries: list[dict] = []
        phones = {p for m, _, _ in fresh for p in (m.phone, m.person.phone) if p}
        self.staff_phones = set(
            rows_in(session, select(Staff.phone), Staff.phone, phones, scalars=True)
        )
        self.counted = set(
            rows_in(
                session,
                select(CommissionRecruit.person_id).where(
                    CommissionRecruit.tenant_id == tenant_id, CommissionRecruit.state == "counted"
                ),
                CommissionRecruit.person_id,
                {m.person.id for m, _, _ in fresh},
                scalars=True,
            )
        )
        versions = session.scalars(
            select(CommissionRule).where(
                CommissionRule.tenant_id == tenant_id,
                CommissionRule.kind.in_(("recruit_bounty", "tier_bonus")),
                CommissionRule.effective_from <= max(ev.at for ev in evs.values()),
            )
        ).all()
        self.bounties = [v for v in versions if v.kind == "recruit_bounty"]
        self.tiers = [v for v in versions if v.kind == "tier_bonus"]
        self.month_counts = month_counts.hold(
            session, tenant_id, {(g.id, evs[at].month) for _, g, at in fresh}
        )
        self.counted_now: Counter = Counter()  # what this batch adds to month_counts
        steps = {(v.rule_key, t["recruits"]) for v in self.tiers for t in v.tiers or []}
        self.tiers_paid = set(
            rows_in(
                session,
                select(CommissionEntry.source_id).where(
                    CommissionEntry.tenant_id == tenant_id, CommissionEntry.source_type == "tier"
                ),
                CommissionEntry.source_id,
                {
                    _tier_source(g.id, evs[at].month, key, n)
                    for _, g, at in fresh
                    for key, n in steps
                },
                scalars=True,
            )
        )
        capped = [v.rule_key for v in versions if v.cap_fen is not None]
        self.used = used_under_caps(
            session,
            tenant_id,
            {(k, g.id, evs[at].accounting_month) for _, g, at in fresh for k in capped},
        )

    def count(self, member, guide, ev: ledger.Event) -> None:
        """A counted recruit: its bounties, then the guide's month count and its tiers."""
        self.counted.add(member.person.id)
        # No bounty of a member is booked before its recruit row (they are written together,
        # neither is ever deleted): nothing to look up; the ledger's once-only key stays.
        for rule in self._in_force(self.bounties, guide, ev):
            self._earn(
                ev,
                rule,
                guide,
                kind="bounty",
                amount_fen=rule.amount_fen or 0,
                source_type="recruit",
                source_id=member.id,
                member_id=member.id,
            )
        self.month_counts[guide.id, ev.month] += 1
        self.counted_now[guide.id, ev.month] += 1
        count = self.month_counts[guide.id, ev.month]
        for rule in self._in_force(self.tiers, guide, ev):
            for step in maths.tiers_reached(rule.tiers, count):
                source_id = _tier_source(guide.id, ev.month, rule.rule_key, step["recruits"])
                if source_id in self.tiers_paid:
                    continue  # each step pays once per guide per month, whichever version
                if self._earn(
                    ev,
                    rule,
                    guide,
                    kind="tier",
                    amount_fen=int(step["bonus_fen"]),
                    source_type="tier",
                    source_id=source_id,
                    member_id=None,
                    basis_fen=count,
                ):
                    self.tiers_paid.add(source_id)

    def _in_force(self, versions: list, guide, ev: ledger.Event) -> list:
        return ledger.rules_in_force(
            versions,
            at=ev.at,
            store_id=guide.store_id,
            region_id=guide.region_id,
            campaign_id=self.campaign_id,
        )

    def _earn(self, ev, rule, guide, *, amount_fen: int, basis_fen=None, **values) -> bool:
        """ledger.earn with the caps counted here: nothing is written for 0 fen."""
        key = (rule.rule_key, guide.id, ev.accounting_month)
        if rule.cap_fen is not None:
            amount_fen = maths.capped(amount_fen, rule.cap_fen, self.used.get(key, 0))
        if amount_fen <= 0:
            return False
        self.used[key] = self.used.get(key, 0) + amount_fen
        self.entries.append(
            ledger.entry_row(
                ev,
                guide_id=guide.id,
                store_id=guide.store_id,
                rule_id=rule.id,
                amount_fen=amount_fen,
                basis_fen=basis_fen,
                **values,
            )
        )
        return True


def _tier_source(guide_id: str, month: str, rule_key: str, recruits) -> str:
    return f"{guide_id}:{month}:{rule_key}:{recruits}"
