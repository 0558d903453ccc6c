"""Lifecycle stage (prospect -> fan -> customer -> regular -> ambassador) from HQ's rules."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp.members.models import Member, Order
from guideapp.org.models import Tenant

DEFAULT_RULES = {"regular_min_orders": 3, "regular_window_days": 180}


def rules_for(session: Session, tenant_id: str) -> dict:
    stored = session.scalar(select(Tenant.lifecycle_rules).where(Tenant.id == tenant_id)) or {}
    return {**DEFAULT_RULES, **stored}


def stage_for(
    *, orders_total: int, orders_in_window: int, has_wechat: bool, current: str, rules: dict
) -> str:
    """Pure rule. Ambassador is granted by people, never computed away."""
    if current == "ambassador":
        return current
    if orders_in_window >= rules["regular_min_orders"]:
        return "regular"
    if orders_total > 0:
        return "customer"
    return "fan" if has_wechat else "prospect"


def recompute_stage(session: Session, member: Member, now: datetime) -> str:
    rules = rules_for(session, member.tenant_id)
    paid = (Order.member_id == member.id) & (Order.refunded_fen < Order.amount_fen)
    since = now - timedelta(days=rules["regular_window_days"])
    total = session.execute(select(func.count()).select_from(Order).where(paid)).scalar_one()
    recent = session.execute(
        select(func.count()).select_from(Order).where(paid, Order.ordered_at >= since)
    ).scalar_one()
    member.stage = stage_for(
        orders_total=total,
        orders_in_window=recent,
        has_wechat=bool(member.unionid or member.guide_id),
        current=member.stage,
        rules=rules,
    )
    return member.stage


def set_rules(session: Session, *, actor, data: dict) -> dict:
    """HQ sets the stage rules; stages follow at each member's next order, refund or merge."""
    from guideapp import policy

    tenant = policy.get_writable(session, actor, Tenant, actor.tenant_id, "update")
    tenant.lifecycle_rules = {**(tenant.lifecycle_rules or {}), **data}
    session.flush()
    return rules_for(session, tenant.id)
