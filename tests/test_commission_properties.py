"""Property tests: random recruits, orders, refunds, merges, transfers, replays, rule changes
and month closes never break the ledger's invariants."""

from collections import defaultdict
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from guideapp.policy.actor import Actor
from guideapp.commissions import recruits
from guideapp.commissions.models import (
    CommissionEntry,
    CommissionRecruit,
    CommissionRule,
    CommissionStatement,
)
from guideapp.commissions.rules import month_bounds, next_month
from guideapp.members.binding import bind, transfer_members
from guideapp.members.identity import follow_merges
from guideapp.members.merge import merge_members
from guideapp.members.models import Member, Order
from guideapp.members.orders import ingest_order, ingest_refund
from tests.commission_factories import assert_counts_kept, close, make_world, phone, recruit, rule

START = datetime(2026, 9, 1, tzinfo=timezone.utc)
NAMES = (
    ["recruit"] * 4
    + ["order"] * 4
    + ["refund"] * 2
    + ["replay_order", "replay_refund", "merge", "transfer", "rule_change", "close", "close"]
)
OPS = st.tuples(
    st.sampled_from(NAMES),
    st.integers(0, 5),
    st.integers(0, 5),
    st.integers(1, 100_000),
    st.integers(1, 240),
)


class Sim:
    def __init__(self, session):
        self.s, self.w = session, make_world(session)
        self.now, self.phones = START, [phone() for _ in range(6)]
        self.members: dict[int, str] = {}
        self.orders, self.refunds = [], []
        self.bounty = rule(session, self.w, kind="recruit_bounty", amount_fen=500, cap_fen=1800)
        self.percent = rule(session, self.w, kind="order_percent", rate_bp=300, order_basis="first")
        rule(session, self.w, kind="order_percent", rate_bp=150, order_basis="binding")
        rule(session, self.w, kind="tier_bonus", tiers=[{"recruits": 2, "bonus_fen": 1000}])
        self.seen: dict[str, tuple] = {}
        self.frozen: dict[str, tuple] = {}

    def member(self, person: int):
        member_id = self.members.get(person)
        return follow_merges(self.s, self.s.get(Member, member_id)) if member_id else None

    def step(self, op, a, b, amount, hours):
        s, w = self.s, self.w
        self.now += timedelta(hours=hours)
        a, b = self.args(op, a, b, amount)
        if op == "recruit":
            member = self.member(b)
            if member is None:
                self.members[b] = recruit(
                    s, w.guides[a], at=self.now, member_phone=self.phones[b]
                ).id
            else:  # the same person scanned again, or a replayed recruitment
                if member.guide_id is None:  # a walk-in buyer scans a guide's code
                    bind(s, member=member, guide=w.guides[a], reason="recruited", now=self.now)
                recruits.on_recruit(s, member=member, guide=w.guides[a], source="scan")
        elif op == "order":
            member = self.member(a)
            data = {
                "channel": "pos",
                "order_no": f"O{len(self.orders)}",
                "amount_fen": b,
                "ordered_at": self.now,
                "phone": member.phone if member else self.phones[a],
            }
            self.orders.append(data)
            row = ingest_order(s, tenant_id=w.tenant_id, data=data, now=self.now)[0]
            self.members.setdefault(a, row.member_id)  # payment is membership
        elif op == "replay_order" and self.orders:
            ingest_order(
                s, tenant_id=w.tenant_id, data=self.orders[a % len(self.orders)], now=self.now
            )
        elif op == "refund" and self.orders:
            data = self.orders[a % len(self.orders)]
            row = s.scalar(
                select(Order).where(
                    Order.tenant_id == w.tenant_id, Order.order_no == data["order_no"]
                )
            )
            amount = (row.amount_fen - row.refunded_fen) * b // 100
            if amount:
                refund = {
                    "channel": "pos",
                    "order_no": row.order_no,
                    "amount_fen": amount,
                    "refund_no": f"R{len(self.refunds)}",
                    "refunded_at": self.now,
                }
                self.refunds.append(refund)
                ingest_refund(s, tenant_id=w.tenant_id, data=refund, now=self.now)
        elif op == "replay_refund" and self.refunds:
            ingest_refund(
                s, tenant_id=w.tenant_id, data=self.refunds[a % len(self.refunds)], now=self.now
            )
        elif op == "merge":
            survivor, merged = self.member(a), self.member(b)
            if survivor and merged and survivor.id != merged.id:
                merge_members(
                    s, actor=Actor.for_staff(w.hq), survivor_id=survivor.id, merged_id=merged.id
                )
        elif op == "transfer" and a != b:
            transfer_members(
                s,
                tenant_id=w.tenant_id,
                from_guide=w.guides[a],
                to_guide=w.guides[b],
                member_ids=None,
                by_staff_id=w.hq.id,
                now=self.now,
            )
            s.expire_all()
        elif op == "rule_change":
            base = self.bounty if a == "bounty" else self.percent
            latest = s.scalar(
                select(CommissionRule)
                .where(CommissionRule.rule_key == base.rule_key)
                .order_by(CommissionRule.version.desc())
            )
            values = {"amount_fen": b} if a == "bounty" else {"rate_bp": b, "order_basis": "first"}
            rule(
                s,
                w,
                kind=base.kind,
                rule_key=base.rule_key,
                version=latest.version + 1,
                since=self.now,
                **values,
            )
        elif op == "close":
            self.close_oldest()

    @staticmethod
    def args(op, a, b, amount):
        """Map the drawn numbers onto each operation's arguments."""
        if op == "recruit":
            return a % 3, b % 4
        if op == "order":
            return a % 4, amount
        if op == "refund":
            return a + b * 6, amount % 100 + 1
        if op in ("replay_order", "replay_refund"):
            return a + b * 6, 0
        if op == "transfer":
            return a % 3, b % 3
        if op == "merge":
            return a % 4, b % 4
        if op == "rule_change":
            return ("bounty", "percent")[a % 2], amount % 2001
        return a, b

    def close_oldest(self):
        month = START.strftime("%Y-%m")
        while month in self.frozen:
            month = next_month(month)
        if month_bounds(month, "Asia/Shanghai")[1] <= self.now:
            settlement, _ = close(self.s, self.w, month, now=self.now)
            self.frozen[month] = self.month_state(settlement.id, month)

    def month_state(self, settlement_id, month):
        statements = self.s.execute(
            select(
                CommissionStatement.level,
                CommissionStatement.subject_id,
                CommissionStatement.net_fen,
                CommissionStatement.earned_fen,
                CommissionStatement.clawed_back_fen,
            ).where(CommissionStatement.settlement_id == settlement_id)
        ).all()
        ids = self.s.scalars(
            select(CommissionEntry.id).where(
                CommissionEntry.tenant_id == self.w.tenant_id,
                CommissionEntry.accounting_month == month,
            )
        ).all()
        return sorted(statements), sorted(ids), settlement_id

    def check(self):
        s = self.s
        rows = s.scalars(
            select(CommissionEntry).where(CommissionEntry.tenant_id == self.w.tenant_id)
        ).all()
        snapshot = {
            r.id: tuple(getattr(r, c.key) for c in CommissionEntry.__table__.columns) for r in rows
        }
        for entry_id, row in self.seen.items():  # no entry ever changed or vanished
            assert snapshot[entry_id] == row
        self.seen = snapshot
        for month, state in self.frozen.items():  # closed months never change
            assert self.month_state(state[2], month) == state
        by_id = {r.id: r for r in rows}
        against = defaultdict(lambda: {"clawback": 0, "reversal": 0})
        for r in rows:
            if r.reverses_id:
                assert by_id[r.reverses_id].kind in ("bounty", "order", "tier")
                against[r.reverses_id][r.kind] -= r.amount_fen
        earned = sum(r.amount_fen for r in rows if r.amount_fen > 0)
        taken = sum(v["clawback"] + v["reversal"] for v in against.values())
        assert sum(r.amount_fen for r in rows) == earned - taken
        person = dict(
            s.execute(
                select(CommissionRecruit.member_id, CommissionRecruit.person_id).where(
                    CommissionRecruit.tenant_id == self.w.tenant_id
                )
            ).all()
        )
        paid = defaultdict(int)
        for r in rows:
            if r.kind not in ("bounty", "order", "tier"):
                continue
            claw, rev = against[r.id]["clawback"], against[r.id]["reversal"]
            assert 0 <= claw + rev <= r.amount_fen  # never more taken back than earned
            if r.kind == "order":
                order = s.get(Order, r.source_id)
                expected = r.amount_fen * order.refunded_fen // order.amount_fen
                assert claw == expected if not rev else claw + rev == r.amount_fen
            rule_row = s.get(CommissionRule, r.rule_id)
            if r.amount_fen - claw - rev > 0 and (
                r.kind == "bounty" or (r.kind == "order" and rule_row.order_basis == "first")
            ):
                root = follow_merges(s, s.get(Member, person.get(r.member_id, r.member_id)))
                paid[(r.kind, root.id, rule_row.rule_key)] += 1
        assert all(n == 1 for n in paid.values()), paid  # nothing paid twice
        assert_counts_kept(s, self.w.tenant_id)  # the tiers' counts follow recruits and merges


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=5, max_size=40))
def test_ledger_invariants_hold_for_any_sequence(session, ops):
    savepoint = session.begin_nested()
    try:
        sim = Sim(session)
        for op in ops:
            sim.step(*op)
            sim.check()
        for kind in sorted({row[6] for row in sim.seen.values()}):
            event(f"ledger has {kind}")
        event(f"months closed: {len(sim.frozen)}")
    finally:
        savepoint.rollback()
