"""What each placeholder says about a member, fetched only for the fields a script uses."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.policy.actor import Actor
from guideapp.members import points
from guideapp.members.models import Member, Order
from guideapp.org.models import Staff, Store, Tenant
from guideapp.replies import render


def placeholder_values(
    session: Session, *, actor: Actor, member: Member, fields: list[str]
) -> dict[str, str]:
    """Text per field; a value the member lacks (no order, no birthday) is empty text."""
    need = set(fields)
    values: dict[str, str] = {}
    if "member.name" in need:
        values["member.name"] = member.name or ""
    if "member.points" in need:
        values["member.points"] = str(points.balance(session, member.id))
    if "member.tier" in need:
        values["member.tier"] = render.TIER_LABELS.get(member.tier, member.tier or "")
    if "member.stage" in need:
        values["member.stage"] = render.STAGE_LABELS.get(member.stage, member.stage or "")
    if "member.birthday" in need:
        values["member.birthday"] = render.month_day(member.birthday)
    if any(f.startswith("member.last_order.") for f in need):
        values.update(_last_order(session, member))
    if need & {"store.name", "store.address", "guide.name"}:
        sender = session.get_one(Staff, actor.staff_id)  # loaded at login: no query
        store = sender.store or (session.get(Store, member.store_id) if member.store_id else None)
        values["store.name"] = store.name if store else ""
        values["store.address"] = store.address if store else ""
        values["guide.name"] = sender.name or ""
    return values


def _last_order(session: Session, member: Member) -> dict[str, str]:
    order = session.scalar(
        select(Order)
        .where(Order.member_id == member.id)
        .order_by(Order.ordered_at.desc(), Order.id.desc())
        .limit(1)
    )
    if order is None:
        return {}
    zone = session.execute(
        select(Tenant.timezone).where(Tenant.id == member.tenant_id)
    ).scalar_one()
    return {
        "member.last_order.product": render.product_names(order.items),
        "member.last_order.date": render.full_date(
            order.ordered_at, ZoneInfo(zone or "Asia/Shanghai")
        ),
        "member.last_order.amount": render.yuan(order.amount_fen),
    }
