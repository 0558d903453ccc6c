"""Coupon reports: issued, redeemed, redemption rate, discount given, orders and GMV with
the coupon, per template, campaign, rule, guide, store or local day.

A row is a coupon's origin (its template, campaign, rule, sending guide, issuing store);
in a window of local days (the tenant's zone), `issued` counts the coupons issued in it and
the other figures the redemptions made in it, reversed ones (a full refund) left out.
`orders` and `gmv_fen` count the distinct orders those redemptions are linked to (what the
member paid, Order.amount_fen): a redemption whose order has not reached us yet counts in
`redeemed` and `discount_fen` only. By day, a coupon counts on the day it was issued and
its redemption on the day it was redeemed. HQ sees the tenant; a manager the coupons of
their store (Coupon.store_id). Each figure is one GROUP BY, never a query per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, literal, null, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.coupons.access import REPORT
from guideapp.coupons.models import Coupon, CouponRedemption, CouponRule, CouponTemplate
from guideapp.db import local_date, utcnow
from guideapp.errors import InvalidInput
from guideapp.members.models import Order
from guideapp.org.models import Staff, Store, Tenant
from guideapp.policy.actor import Actor
from guideapp.tasks.models import Campaign

GROUPS = ("template", "campaign", "rule", "guide", "store", "day")
FIGURES = ("issued", "redeemed", "discount_fen", "orders", "gmv_fen")
MAX_DAYS = 366
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class Scope:
    """What a report covers, checked: who asks, which local days, which template."""

    actor: Actor
    zone: ZoneInfo
    date_from: date
    date_to: date
    template_id: str | None

    @property
    def start(self) -> datetime:
        return _midnight(self.date_from, self.zone)

    @property
    def end(self) -> datetime:
        return _midnight(self.date_to + timedelta(days=1), self.zone)


def scope(
    session: Session,
    *,
    actor: Actor,
    date_from: date | None = None,
    date_to: date | None = None,
    template_id: str | None = None,
    now: datetime | None = None,
) -> Scope:
    """HQ or a manager (403), a template they may see (404), at most MAX_DAYS days (422);
    by default the last 30 local days up to today."""
    policy.require(actor, REPORT)
    zone = ZoneInfo(
        session.scalars(select(Tenant.timezone).where(Tenant.id == actor.tenant_id)).one()
    )
    if date_to is None:
        date_to = (now or utcnow()).astimezone(zone).date()
    if date_from is None:
        date_from = date_to - timedelta(days=DEFAULT_DAYS - 1)
    if date_from > date_to:
        raise InvalidInput(errors={"from": ["Must not be after 'to'."]})
    if (date_to - date_from).days >= MAX_DAYS:
        raise InvalidInput(errors={"from": [f"At most {MAX_DAYS} days at a time."]})
    if template_id is not None:
        policy.get_visible(session, actor, CouponTemplate, template_id, label="Coupon template")
    return Scope(actor, zone, date_from, date_to, template_id)


def report(session: Session, *, scope: Scope, group_by: str) -> dict:
    """The rows of `group_by` (each figure one grouped query) and the totals."""
    if group_by not in GROUPS:
        raise InvalidInput(errors={"group_by": [f"One of {', '.join(GROUPS)}."]})
    rows = _figures(session, scope, group_by)
    totals = _figures(session, scope, None).get(None) or _zero()
    items = [{"key": key, **figures} for key, figures in rows.items()]
    _name(session, group_by, items)
    if group_by == "day":
        items.sort(key=lambda r: r["key"] or "")
    else:  # the biggest first; "none" (no campaign, rule, guide) last
        items.sort(key=lambda r: (r["key"] is None, -r["issued"], -r["redeemed"], r["key"] or ""))
    return {
        "group_by": group_by,
        "date_from": scope.date_from,
        "date_to": scope.date_to,
        "timezone": scope.zone.key,
        "template_id": scope.template_id,
        "totals": _rated(totals),
        "rows": [_rated(item) for item in items],
    }


def _figures(session: Session, scope: Scope, group_by: str | None) -> dict:
    """{key: figures}: three grouped queries (issued; redemptions; their distinct orders)."""
    actor, start, end = scope.actor, scope.start, scope.end
    coupon_where = [Coupon.tenant_id == actor.tenant_id]
    if not actor.is_hq:
        coupon_where.append(Coupon.store_id == actor.store_id)
    if scope.template_id is not None:
        coupon_where.append(Coupon.template_id == scope.template_id)

    def key(at):
        if group_by == "day":
            return local_date(session, at, scope.zone, start, end)
        return _KEYS[group_by]() if group_by else literal("all")

    issued = (
        select(key(Coupon.issued_at).label("k"))
        .where(*coupon_where, Coupon.issued_at >= start, Coupon.issued_at < end)
        .subquery()
    )
    used = (
        select(
            key(CouponRedemption.redeemed_at).label("k"),
            CouponRedemption.discount_fen,
            CouponRedemption.order_id,
        )
        .join(Coupon, Coupon.id == CouponRedemption.coupon_id)
        .where(
            *coupon_where,
            CouponRedemption.tenant_id == actor.tenant_id,
            CouponRedemption.reversed_at.is_(None),
            CouponRedemption.redeemed_at >= start,
            CouponRedemption.redeemed_at < end,
        )
        .subquery()
    )
    orders = select(used.c.k, used.c.order_id).where(used.c.order_id.is_not(None)).distinct()
    orders_sub = orders.subquery()
    found: dict = {}

    def add(stmt, *names):
        for k, *values in session.execute(stmt):
            row = found.setdefault(None if group_by is None else k, _zero())
            for name, value in zip(names, values, strict=True):
                row[name] = int(value or 0)

    add(select(issued.c.k, func.count()).group_by(issued.c.k), "issued")
    add(
        select(used.c.k, func.count(), func.sum(used.c.discount_fen)).group_by(used.c.k),
        "redeemed",
        "discount_fen",
    )
    add(
        select(orders_sub.c.k, func.count(), func.sum(Order.amount_fen))
        .join(Order, Order.id == orders_sub.c.order_id)
        .group_by(orders_sub.c.k),
        "orders",
        "gmv_fen",
    )
    return found


_KEYS = {
    "template": lambda: Coupon.template_id,
    "campaign": lambda: Coupon.campaign_id,
    "rule": lambda: case((Coupon.source == "rule", Coupon.source_id), else_=null()),
    "guide": lambda: Coupon.issued_by,
    "store": lambda: Coupon.store_id,
}
_NAMES: dict[str, tuple[Any, Any]] = {
    "template": (CouponTemplate, CouponTemplate.name),
    "campaign": (Campaign, Campaign.title),
    "rule": (CouponRule, CouponRule.name),
    "guide": (Staff, Staff.name),
    "store": (Store, Store.name),
}


def _name(session: Session, group_by: str, items: list[dict]) -> None:
    """Each row's template, campaign, rule, guide or store name (one query)."""
    keys = {item["key"] for item in items if item["key"] is not None}
    names: dict = {}
    if group_by in _NAMES and keys:
        model, column = _NAMES[group_by]
        names = dict(session.execute(select(model.id, column).where(model.id.in_(keys))).all())
    for item in items:
        item["name"] = names.get(item["key"])


def _zero() -> dict:
    return dict.fromkeys(FIGURES, 0)


def _rated(row: dict) -> dict:
    issued = row["issued"]
    return {**row, "redemption_rate": round(row["redeemed"] / issued, 4) if issued else None}


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(timezone.utc)
