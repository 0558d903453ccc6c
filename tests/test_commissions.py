"""Commission rules, ledger, fraud rules, clawback, replays, rule changes and settlement."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from guideapp.policy.actor import Actor
from guideapp.commissions import recruits
from guideapp.commissions import rules as maths
from guideapp.commissions.models import CommissionRecruit, CommissionStatement
from guideapp.members.binding import transfer_members
from guideapp.members.merge import merge_members
from guideapp.members.orders import ingest_order, ingest_refund
from guideapp.members.signals import orders_recorded
from guideapp.errors import InvalidState
from tests.commission_factories import (
    close,
    entries,
    make_world,
    order,
    recruit,
    refund,
    rule,
    settlement_of,
    total,
)

CST = timezone(timedelta(hours=8))
NOV = datetime(2026, 11, 10, 12, tzinfo=CST)


@pytest.fixture
def world(session):
    return make_world(session)


def _snapshot(rows):
    return [{c.key: getattr(r, c.key) for c in type(r).__table__.columns} for r in rows]


def test_pure_maths():
    assert maths.percent_of(69900, 300) == 2097  # rounded down to the fen
    assert maths.percent_of(1, 9999) == 0
    assert maths.yuan(500) == "¥5.00" and maths.yuan(-150) == "-¥1.50"
    assert maths.yuan(123456789) == "¥1,234,567.89"
    # Cumulative clawback: 3 partial refunds sum exactly to the earning.
    clawed = 0
    for refunded in (3333, 6666, 10000):
        clawed += maths.clawback_due(
            earned_fen=301,
            order_fen=10000,
            refunded_fen=refunded,
            clawed_fen=clawed,
            remaining_fen=301 - clawed,
        )
    assert clawed == 301
    assert maths.capped(500, 1200, 1000) == 200 and maths.capped(500, None, 10**9) == 500
    assert maths.month_of(datetime(2026, 11, 30, 23, 30, tzinfo=CST), "Asia/Shanghai") == "2026-11"
    assert maths.month_of(datetime(2026, 12, 1, 0, 30, tzinfo=CST), "Asia/Shanghai") == "2026-12"
    assert maths.accounting_month("2026-11", {"2026-11", "2026-12"}) == "2027-01"


def test_bounty_once_per_recruit_and_replayed_hook_earns_once(session, world):
    rule(session, world, kind="recruit_bounty", amount_fen=500)
    member = recruit(session, world.guides[0], at=NOV, name="张三")
    recruits.on_recruit(session, member=member, guide=world.guides[0], source="registration")
    recruits.on_recruit(session, member=member, guide=world.guides[1], source="scan")
    assert [(e.kind, e.amount_fen, e.guide_id) for e in entries(session, world)] == [
        ("bounty", 500, world.guides[0].id)
    ]


def test_guides_cannot_recruit_themselves_or_colleagues(session, world):
    rule(session, world, kind="recruit_bounty", amount_fen=500)
    rule(session, world, kind="order_percent", rate_bp=1000, order_basis="binding")
    own = recruit(session, world.guides[0], at=NOV, member_phone=world.guides[0].phone)
    colleague = recruit(session, world.guides[0], at=NOV, member_phone=world.hq.phone)
    order(session, world, own, amount=10000, at=NOV + timedelta(hours=1))
    order(session, world, colleague, amount=10000, at=NOV + timedelta(hours=1))
    assert entries(session, world) == []
    states = session.scalars(
        select(CommissionRecruit.state).where(CommissionRecruit.tenant_id == world.tenant_id)
    ).all()
    assert states == ["staff", "staff"]


def test_same_person_merged_pays_one_bounty_and_one_first_order(session, world):
    rule(session, world, kind="recruit_bounty", amount_fen=500)
    rule(session, world, kind="order_percent", rate_bp=300, order_basis="first")
    a = recruit(session, world.guides[0], at=NOV, name="张三")
    b = recruit(session, world.guides[2], at=NOV + timedelta(days=1), name="张三(微信)")
    order(session, world, a, amount=10000, at=NOV + timedelta(days=2))
    order(session, world, b, amount=20000, at=NOV + timedelta(days=3))
    assert total(session, world) == 500 + 500 + 300 + 600
    hq = Actor.for_staff(world.hq)
    result = merge_members(session, actor=hq, survivor_id=a.id, merged_id=b.id)
    assert result["moved"]["commission_reversals"] == 2
    assert total(session, world) == 500 + 300  # the first guide keeps what they earned
    assert total(session, world, guide_id=world.guides[2].id) == 0
    # A later recruitment event for the survivor (a scan) pays nothing: same person.
    recruits.on_recruit(session, member=a, guide=world.guides[1], source="scan")
    assert total(session, world) == 500 + 300
    # A second order of the merged person is not a first order.
    order(session, world, a, amount=50000, at=NOV + timedelta(days=4))
    assert total(session, world) == 500 + 300


def test_merge_keeps_attribution_on_the_survivor(session, world):
    rule(session, world, kind="recruit_bounty", amount_fen=500)
    recruited = recruit(session, world.guides[0], at=NOV)
    walk_in = ingest_order(
        session,
        tenant_id=world.tenant_id,
        data={
            "channel": "pos",
            "order_no": "W1",
            "amount_fen": 100,
            "ordered_at": NOV,
            "phone": "16900000001",
        },
    )[0]
    survivor_id = walk_in.member_id
    merge_members(
        session, actor=Actor.for_staff(world.hq), survivor_id=survivor_id, merged_id=recruited.id
    )
    person = session.scalar(
        select(CommissionRecruit.person_id).where(CommissionRecruit.member_id == recruited.id)
    )
    assert person == survivor_id and total(session, world) == 500


def test_partial_and_full_refunds_claw_back_proportionally(session, world):
    rule(session, world, kind="order_percent", rate_bp=300, order_basis="binding")
    member = recruit(session, world.guides[0], at=NOV)
    the_order = order(session, world, member, amount=69900, at=NOV + timedelta(hours=1))
    assert total(session, world) == 2097
    refund(session, world, the_order, amount=23300, at=NOV + timedelta(days=1))
    assert total(session, world, kind="clawback") == -(2097 * 23300 // 69900)
    again = refund(
        session, world, the_order, amount=23300, at=NOV + timedelta(days=2), refund_no="R2"
    )
    ingest_refund(
        session,
        tenant_id=world.tenant_id,
        data={  # a replayed webhook
            "channel": "pos",
            "order_no": the_order.order_no,
            "refund_no": "R2",
            "amount_fen": 23300,
            "refunded_at": again.refunded_at,
        },
    )
    assert total(session, world, kind="clawback") == -(2097 * 46600 // 69900)
    refund(session, world, the_order, amount=23300, at=NOV + timedelta(days=3))
    assert total(session, world) == 0  # fully refunded: everything clawed back, not more
    assert all(e.guide_id == world.guides[0].id for e in entries(session, world))


def test_replayed_order_earns_once(session, world):
    rule(session, world, kind="order_percent", rate_bp=500, order_basis="binding")
    member = recruit(session, world.guides[0], at=NOV)
    first = order(session, world, member, amount=10000, at=NOV, order_no="O-1")
    order(session, world, member, amount=10000, at=NOV, order_no="O-1")
    orders_recorded.send(session, tenant_id=world.tenant_id, order_ids=[first.id])  # re-sent
    assert [e.amount_fen for e in entries(session, world)] == [500]


def test_rule_change_never_rewrites_what_was_earned(session, world):
    v1 = rule(session, world, kind="recruit_bounty", amount_fen=500)
    recruit(session, world.guides[0], at=NOV)
    before = _snapshot(entries(session, world))
    v2 = rule(
        session,
        world,
        kind="recruit_bounty",
        amount_fen=800,
        rule_key=v1.rule_key,
        version=2,
        since=NOV + timedelta(days=1),
    )
    recruit(session, world.guides[0], at=NOV + timedelta(days=2))
    rows = entries(session, world)
    assert _snapshot(rows[:1]) == before
    assert [(e.amount_fen, e.rule_id) for e in rows] == [(500, v1.id), (800, v2.id)]


def test_tiers_pay_once_per_guide_per_month_and_caps_hold(session, world):
    tier = rule(
        session,
        world,
        kind="tier_bonus",
        tiers=[{"recruits": 2, "bonus_fen": 1000}, {"recruits": 3, "bonus_fen": 3000}],
    )
    rule(session, world, kind="recruit_bounty", amount_fen=500, cap_fen=1200)
    for day in range(4):
        recruit(session, world.guides[0], at=NOV + timedelta(days=day))
    rule(
        session,
        world,
        kind="tier_bonus",
        rule_key=tier.rule_key,
        version=2,
        since=NOV + timedelta(days=5),
        tiers=[{"recruits": 2, "bonus_fen": 9999}],
    )
    recruit(session, world.guides[0], at=NOV + timedelta(days=6))
    assert [e.amount_fen for e in entries(session, world, kind="tier")] == [1000, 3000]
    assert [e.amount_fen for e in entries(session, world, kind="bounty")] == [500, 500, 200]
    recruit(session, world.guides[0], at=NOV + timedelta(days=30))  # December: new month
    assert [e.amount_fen for e in entries(session, world, kind="bounty")][-1] == 500


def test_store_scoped_rule_pays_only_there(session, world):
    rule(
        session,
        world,
        kind="recruit_bounty",
        amount_fen=700,
        scope="store",
        scope_id=world.stores[1].id,
    )
    recruit(session, world.guides[0], at=NOV)
    recruit(session, world.guides[2], at=NOV)
    assert [(e.guide_id, e.amount_fen) for e in entries(session, world)] == [
        (world.guides[2].id, 700)
    ]


def test_transfer_moves_future_earnings_not_past(session, world):
    rule(session, world, kind="order_percent", rate_bp=1000, order_basis="binding")
    member = recruit(session, world.guides[0], at=NOV)
    order(session, world, member, amount=10000, at=NOV + timedelta(hours=1))
    past = _snapshot(entries(session, world))
    transfer_members(
        session,
        tenant_id=world.tenant_id,
        from_guide=world.guides[0],
        to_guide=world.guides[2],
        member_ids=None,
        by_staff_id=world.hq.id,
        now=NOV + timedelta(days=1),
    )
    member = session.get(type(member), member.id)
    order(session, world, member, amount=20000, at=NOV + timedelta(days=2))
    rows = entries(session, world)
    assert _snapshot(rows[:1]) == past
    assert [(e.guide_id, e.store_id, e.amount_fen) for e in rows[1:]] == [
        (world.guides[2].id, world.stores[1].id, 2000)
    ]


def test_month_boundary_is_the_tenant_zone_and_closed_months_are_frozen(session, world):
    rule(session, world, kind="order_percent", rate_bp=1000, order_basis="binding")
    member = recruit(session, world.guides[0], at=NOV)
    late_nov = order(
        session, world, member, amount=10000, at=datetime(2026, 11, 30, 23, 30, tzinfo=CST)
    )
    early_dec = order(
        session, world, member, amount=20000, at=datetime(2026, 12, 1, 0, 30, tzinfo=CST)
    )  # still 30 Nov in UTC
    months = {e.source_id: e.accounting_month for e in entries(session, world)}
    assert months == {late_nov.id: "2026-11", early_dec.id: "2026-12"}
    with pytest.raises(InvalidState):
        close(session, world, "2026-11", now=datetime(2026, 11, 30, 15, 59, tzinfo=timezone.utc))
    settled, created = close(session, world, "2026-11")
    frozen = _snapshot(
        session.scalars(
            select(CommissionStatement).where(CommissionStatement.settlement_id == settled.id)
        ).all()
    )
    assert created and settled.net_fen == 1000 and settled.state == "draft"
    assert close(session, world, "2026-11") == (settled, False)  # idempotent
    late = order(session, world, member, amount=30000, at=datetime(2026, 11, 20, tzinfo=CST))
    refund(session, world, late_nov, amount=10000, at=datetime(2026, 11, 30, 23, 50, tzinfo=CST))
    months = {(e.kind, e.source_id): e.accounting_month for e in entries(session, world)}
    assert months[("order", late.id)] == "2026-12"
    assert [m for (k, _), m in months.items() if k == "clawback"] == ["2026-12"]
    assert (
        _snapshot(
            session.scalars(
                select(CommissionStatement).where(CommissionStatement.settlement_id == settled.id)
            ).all()
        )
        == frozen
    )
    assert settlement_of(session, world, "2026-11").net_fen == 1000


def test_statements_per_guide_and_store(session, world):
    rule(session, world, kind="recruit_bounty", amount_fen=500)
    rule(session, world, kind="order_percent", rate_bp=1000, order_basis="binding")
    a = recruit(session, world.guides[0], at=NOV)
    recruit(session, world.guides[1], at=NOV)
    recruit(session, world.guides[2], at=NOV)
    refund(session, world, order(session, world, a, amount=10000, at=NOV), amount=5000, at=NOV)
    settled, _ = close(session, world, "2026-11")
    rows = {
        (s.level, s.subject_id): (s.earned_fen, s.clawed_back_fen, s.net_fen, s.entries)
        for s in session.scalars(
            select(CommissionStatement).where(CommissionStatement.settlement_id == settled.id)
        )
    }
    g0, g1, g2 = (g.id for g in world.guides)
    s0, s1 = (s.id for s in world.stores)
    assert rows == {
        ("guide", g0): (1500, 500, 1000, 3),
        ("guide", g1): (500, 0, 500, 1),
        ("guide", g2): (500, 0, 500, 1),
        ("store", s0): (2000, 500, 1500, 4),
        ("store", s1): (500, 0, 500, 1),
    }
    assert (settled.earned_fen, settled.clawed_back_fen, settled.net_fen) == (2500, 500, 2000)
