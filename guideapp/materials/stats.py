"""Which materials are shared, by whom, and which shares were followed by orders."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.db import plus_days
from guideapp.materials.models import Material, Share
from guideapp.members.models import Order
from guideapp.org.models import Staff, Store

GROUPINGS = ("material", "guide", "store", "day")


def share_stats(
    session: Session,
    *,
    actor: Actor,
    start: date,
    end: date,
    group_by: str,
    order_days: int = 7,
    material_id: str | None = None,
) -> list[dict]:
    key: Any
    label: Any
    key, label = {
        "material": (Share.material_id, func.max(Material.title)),
        "guide": (Share.staff_id, func.max(Staff.name)),
        "store": (Share.store_id, func.max(Store.name)),
        "day": (Share.day, func.max(Share.day)),
    }[group_by]
    followed = (
        select(Order.id)
        .where(
            Order.member_id == Share.member_id,
            Order.ordered_at >= Share.shared_at,
            Order.ordered_at <= plus_days(session, Share.shared_at, order_days),
        )
        .exists()
    )
    stmt = (
        select(
            key.label("key"),
            label.label("label"),
            func.count(Share.id).label("shares"),
            func.count(distinct(Share.member_id)).label("members"),
            func.count(distinct(Share.staff_id)).label("guides"),
            func.sum(case((followed, 1), else_=0)).label("followed_by_orders"),
        )
        .select_from(Share)
        .join(Material, Material.id == Share.material_id)
        .join(Staff, Staff.id == Share.staff_id)
        .outerjoin(Store, Store.id == Share.store_id)
        .where(policy.visible(actor, Share), Share.day.between(start, end))
        .group_by(key)
    )
    if material_id:
        stmt = stmt.where(Share.material_id == material_id)
    rows = []
    for row in session.execute(stmt):
        item = dict(row._mapping)
        item["key"] = str(item["key"])
        item["label"] = str(item["label"]) if item["label"] is not None else None
        item["followed_by_orders"] = int(item["followed_by_orders"] or 0)
        rows.append(item)
    return sorted(rows, key=lambda r: (-r["shares"], r["key"]))
