"""Leaderboards of a store or a region: recruits or net earnings in a month."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.commissions.models import CommissionEntry, CommissionRecruit
from guideapp.commissions.rules import yuan
from guideapp.commissions.service import current_month
from guideapp.commissions.settlement import check_month
from guideapp.errors import InvalidInput
from guideapp.org.models import Region, Staff, Store

SCOPES = ("store", "region")
METRICS = ("recruits", "earnings")


def leaderboard(
    session: Session,
    *,
    actor: Actor,
    scope: str,
    metric: str,
    month: str | None = None,
    limit: int = 50,
    store_id: str | None = None,
    region_id: str | None = None,
) -> dict:
    """Guides ranked within the caller's store or region (HQ names the store or region)."""
    month = check_month(month) if month else current_month(session, actor.tenant_id)
    scope_id = _scope_id(session, actor, scope, store_id, region_id)
    table: type[Any]
    value: ColumnElement[Any]
    if metric == "recruits":
        table, value = CommissionRecruit, func.count(CommissionRecruit.id)
        where = [CommissionRecruit.month == month, CommissionRecruit.state == "counted"]
    else:
        table, value = CommissionEntry, func.sum(CommissionEntry.amount_fen)
        where = [CommissionEntry.accounting_month == month]
    stores = (
        table.store_id == scope_id
        if scope == "store"
        else table.store_id.in_(select(Store.id).where(Store.region_id == scope_id))
    )
    rows = session.execute(
        select(table.guide_id, value.label("value"))
        .where(table.tenant_id == actor.tenant_id, stores, *where)
        .group_by(table.guide_id)
        .order_by(value.desc(), table.guide_id)
        .limit(limit)
    ).all()
    guides = (
        {
            g.id: g
            for g in session.scalars(select(Staff).where(Staff.id.in_([r.guide_id for r in rows])))
        }
        if rows
        else {}
    )
    items = []
    for rank, row in enumerate(rows, start=1):
        guide = guides.get(row.guide_id)
        value_int = int(row.value or 0)
        items.append(
            {
                "rank": rank,
                "guide_id": row.guide_id,
                "guide_name": guide.name if guide else None,
                "store_id": guide.store_id if guide else None,
                "store_name": guide.store.name if guide and guide.store else None,
                "value": value_int,
                "value_text": f"{value_int} 人" if metric == "recruits" else yuan(value_int),
                "is_me": row.guide_id == actor.staff_id,
            }
        )
    return {"scope": scope, "scope_id": scope_id, "metric": metric, "month": month, "items": items}


def _scope_id(
    session: Session, actor: Actor, scope: str, store_id: str | None, region_id: str | None
) -> str:
    if scope == "store":
        wanted = store_id or actor.store_id
        if not wanted:
            raise InvalidInput(errors={"store_id": ["HQ names the store (store_id)."]})
        return policy.get_visible(session, actor, Store, wanted, label="Store").id
    wanted = region_id or actor.region_id
    if not wanted:
        raise InvalidInput(errors={"region_id": ["HQ names the region (region_id)."]})
    if not actor.is_hq and wanted != actor.region_id:
        raise InvalidInput(errors={"region_id": ["Only your own region's leaderboard."]})
    return policy.get_visible(session, actor, Region, wanted, label="Region").id
