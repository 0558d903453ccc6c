"""Rows for commission tests: a small brand group of its own, recruits, orders and refunds."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select

from guideapp.commissions.models import (
    CommissionEntry,
    CommissionMonthCount,
    CommissionRecruit,
    CommissionRule,
    CommissionSettlement,
)
from guideapp.commissions.settlement import close_month
from guideapp.db import new_id
from guideapp.members.binding import bind
from guideapp.members.identity import create_member
from guideapp.members.orders import ingest_order, ingest_refund
from guideapp.members.signals import member_recruited
from guideapp.org.models import Brand, Region, Staff, Store
from guideapp.org.service import create_tenant
from tests.factories import password_hash

PAST = datetime(2026, 1, 1, tzinfo=timezone.utc)
_phones = itertools.count(random.Random().randrange(10**6) * 100)


def phone() -> str:
    return f"166{next(_phones) % 10**8:08d}"


@dataclass
class World:
    tenant_id: str
    region_id: str
    stores: list
    guides: list  # guides[0], guides[1] in stores[0]; guides[2] in stores[1]
    hq: Staff


def make_world(session, *, timezone_name: str = "Asia/Shanghai") -> World:
    tenant = create_tenant(
        session, slug=f"c{new_id()[:10]}", name="Commission Test", timezone=timezone_name
    )
    brand = Brand(tenant_id=tenant.id, code="b", name="B")
    session.add(brand)
    session.flush()
    region = Region(tenant_id=tenant.id, brand_id=brand.id, code="east", name="华东")
    session.add(region)
    session.flush()
    stores = [
        Store(
            tenant_id=tenant.id,
            brand_id=brand.id,
            region_id=region.id,
            code=f"S{i}",
            name=f"门店{i}",
            city="上海",
            address="路",
            lat=31.2,
            lng=121.4,
            opening_hours={},
        )
        for i in range(2)
    ]
    session.add_all(stores)
    session.flush()
    guides = [
        Staff(
            tenant_id=tenant.id,
            store_id=stores[s].id,
            role="guide",
            name=f"导购{i}",
            phone=phone(),
            password_hash=password_hash(),
        )
        for i, s in enumerate((0, 0, 1))
    ]
    hq = Staff(
        tenant_id=tenant.id,
        role="hq_admin",
        name="总部",
        phone=phone(),
        password_hash=password_hash(),
    )
    session.add_all([*guides, hq])
    session.flush()
    return World(tenant.id, region.id, stores, guides, hq)


def rule(
    session,
    world: World,
    *,
    kind: str,
    since: datetime = PAST,
    rule_key=None,
    version: int = 1,
    **fields,
) -> CommissionRule:
    rule_id = new_id()
    row = CommissionRule(
        id=rule_id,
        rule_key=rule_key or rule_id,
        version=version,
        tenant_id=world.tenant_id,
        name=fields.pop("name", kind),
        kind=kind,
        scope=fields.pop("scope", "tenant"),
        effective_from=since,
        **fields,
    )
    session.add(row)
    session.flush()
    return row


def recruit(
    session,
    guide: Staff,
    *,
    at: datetime,
    member_phone: str | None = None,
    unionid: str | None = None,
    name: str = "张三",
    **hook_kwargs,
):
    """What registration (or a scan) does: a member bound to the guide, then the signal."""
    member = create_member(
        session,
        tenant_id=guide.tenant_id,
        phone=member_phone or phone(),
        unionid=unionid,
        name=name,
        source_channel="store_scan",
        joined_at=at,
    )
    bind(session, member=member, guide=guide, reason="recruited", now=at)
    member_recruited.send(session, member=member, guide=guide, source="registration", **hook_kwargs)
    return member


def order(session, world: World, member, *, amount: int, at: datetime, order_no=None):
    return ingest_order(
        session,
        tenant_id=world.tenant_id,
        data={
            "channel": "pos",
            "order_no": order_no or new_id(),
            "amount_fen": amount,
            "ordered_at": at,
            "phone": member.phone,
            "unionid": member.unionid,
        },
    )[0]


def refund(session, world: World, the_order, *, amount: int, at: datetime, refund_no=None):
    return ingest_refund(
        session,
        tenant_id=world.tenant_id,
        data={
            "channel": the_order.channel,
            "order_no": the_order.order_no,
            "refund_no": refund_no or new_id(),
            "amount_fen": amount,
            "refunded_at": at,
        },
        now=at,  # recorded when it happened: its clawback lands in that month (if open)
    )[0]


def entries(session, world: World, **where) -> list[CommissionEntry]:
    stmt = select(CommissionEntry).where(CommissionEntry.tenant_id == world.tenant_id)
    for key, value in where.items():
        stmt = stmt.where(getattr(CommissionEntry, key) == value)
    return session.scalars(stmt.order_by(CommissionEntry.created_at, CommissionEntry.id)).all()


def total(session, world: World, **where) -> int:
    return sum(e.amount_fen for e in entries(session, world, **where))


def close(session, world: World, month: str, *, now=datetime(2030, 1, 1, tzinfo=timezone.utc)):
    return close_month(session, tenant_id=world.tenant_id, month=month, now=now)


def settlement_of(session, world: World, month: str):
    return session.scalar(
        select(CommissionSettlement).where(
            CommissionSettlement.tenant_id == world.tenant_id, CommissionSettlement.month == month
        )
    )


def foreign_commissions(session, caller: str, kind: str) -> list[str]:
    """Ids of commission records `caller` must not see (tests/test_scoping.py)."""
    from tests.conftest import GUIDE, HQ, OTHER_GUIDE, RIVAL_GUIDE, RIVAL_HQ
    from tests.factories import staff_by_phone, store_by_code

    at = datetime(2026, 10, 5, tzinfo=timezone.utc)
    rival_guide, other_guide = (
        staff_by_phone(session, RIVAL_GUIDE),
        staff_by_phone(session, OTHER_GUIDE),
    )
    rival = World(rival_guide.tenant_id, None, [], [rival_guide], staff_by_phone(session, RIVAL_HQ))
    stride = World(other_guide.tenant_id, None, [], [other_guide], staff_by_phone(session, HQ))
    if kind == "commission_settlement":
        rival_id, stride_id = (close(session, w, "2026-01")[0].id for w in (rival, stride))
        return {HQ: [rival_id], RIVAL_HQ: [stride_id]}.get(caller, [rival_id, stride_id])
    if kind == "commission_rule":
        rival_rule = rule(session, rival, kind="recruit_bounty", amount_fen=100).id
        bj_rule = rule(
            session,
            stride,
            kind="recruit_bounty",
            amount_fen=100,
            scope="store",
            scope_id=store_by_code(session, "BJ001").id,
        ).id
        return {HQ: [rival_rule], RIVAL_HQ: [bj_rule]}.get(caller, [rival_rule, bj_rule])
    rule(session, rival, kind="recruit_bounty", amount_fen=100)
    rival_entry, bj_entry, colleague_entry = (
        entries(session, w, member_id=recruit(session, g, at=at).id)[0].id
        for w, g in (
            (rival, rival_guide),
            (stride, other_guide),
            (stride, staff_by_phone(session, "13913775684")),
        )
    )
    if caller == GUIDE:
        return [rival_entry, bj_entry, colleague_entry]
    return {HQ: [rival_entry], RIVAL_HQ: [bj_entry]}.get(caller, [rival_entry, bj_entry])


def recount(session, tenant_id):
    """commission_month_counts from the recruit rows, as its migration fills it."""
    session.flush()
    session.execute(
        CommissionMonthCount.__table__.delete().where(CommissionMonthCount.tenant_id == tenant_id)
    )
    session.execute(
        CommissionMonthCount.__table__.insert().from_select(
            ["tenant_id", "guide_id", "month", "counted"],
            _counted(tenant_id),
        )
    )


def _counted(tenant_id):
    return (
        select(
            CommissionRecruit.tenant_id,
            CommissionRecruit.guide_id,
            CommissionRecruit.month,
            func.count(),
        )
        .where(CommissionRecruit.tenant_id == tenant_id, CommissionRecruit.state == "counted")
        .group_by(CommissionRecruit.tenant_id, CommissionRecruit.guide_id, CommissionRecruit.month)
    )


def assert_counts_kept(session, tenant_id):
    """Every guide's month count equals its counted recruit rows."""
    session.flush()
    kept = session.execute(
        select(
            CommissionMonthCount.tenant_id,
            CommissionMonthCount.guide_id,
            CommissionMonthCount.month,
            CommissionMonthCount.counted,
        ).where(CommissionMonthCount.tenant_id == tenant_id, CommissionMonthCount.counted != 0)
    ).all()
    assert sorted(map(tuple, kept)) == sorted(map(tuple, session.execute(_counted(tenant_id))))
