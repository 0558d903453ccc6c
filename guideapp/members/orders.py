"""Orders and refunds from every channel: idempotent by channel + number, refunds as events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from guideapp.db import utcnow
from guideapp.errors import Conflict, InvalidInput, NotFound
from guideapp.members.identity import ensure_member, log_member, member_scopes
from guideapp.members.lifecycle import recompute_stage
from guideapp.members.models import Member, Order, OrderRefund
from guideapp.moments import check_fact_time
from guideapp.members.signals import orders_recorded, refunds_recorded
from guideapp.org.models import Store
from guideapp.phones import require_phone


def ingest_order(
    session: Session, *, tenant_id: str, data: dict, now: datetime | None = None
) -> tuple[Order, bool]:
    """Record an order; a replay of the same channel + order_no returns the first one.

    `now` is the server's clock (tests and replays of old feeds may set it). Callers other
    than the REST schema may also give `identities` ({kind: value}, e.g. a WeChat Pay
    payer's {"openid": ...}) and a `store_id` they resolved themselves."""
    now = now or utcnow()
    existing = session.scalar(
        select(Order).where(
            Order.tenant_id == tenant_id,
            Order.channel == data["channel"],
            Order.order_no == data["order_no"],
        )
    )
    if existing is not None:
        if existing.amount_fen != data["amount_fen"]:
            raise Conflict(
                "This order number was already recorded with another amount.",
                errors={"order_no": ["Recorded before with a different amount."]},
            )
        return existing, False
    check_fact_time("ordered_at", data["ordered_at"], now=now)
    phone = require_phone(data["phone"]) if data.get("phone") else None
    identities = dict(data.get("identities") or {})
    if data.get("channel_customer_id"):
        identities[data["channel"]] = data["channel_customer_id"]
    if not (phone or data.get("unionid") or identities):
        raise InvalidInput(
            errors={
                "phone": [
                    "Give the buyer's phone, unionid or channel_customer_id"
                    " (payment is membership)."
                ]
            }
        )
    member, _ = ensure_member(
        session,
        tenant_id=tenant_id,
        source_channel=data["channel"],
        phone=phone,
        unionid=data.get("unionid"),
        identities=identities or None,
        name=data.get("buyer_name") or "",
    )
    store_id = (
        data.get("store_id")
        or _store_id(session, tenant_id, data.get("store_code"))
        or member.store_id
    )
    old_scopes = member_scopes(member)
    learn_from_order(member, buyer_name=data.get("buyer_name"), store_id=store_id)
    order = Order(
        tenant_id=tenant_id,
        member_id=member.id,
        channel=data["channel"],
        order_no=data["order_no"],
        store_id=store_id,
        guide_id=member.guide_id,
        amount_fen=data["amount_fen"],
        items=data.get("items") or [],
        ordered_at=data["ordered_at"],
    )
    session.add(order)
    session.flush()
    if member.last_order_at is None or order.ordered_at > member.last_order_at:
        member.last_order_at = order.ordered_at
    if member.first_order_at is None or order.ordered_at < member.first_order_at:
        member.first_order_at = order.ordered_at
    recompute_stage(session, member, now)
    session.flush()
    log_member(session, member, old_scopes=old_scopes)
    log_member(session, member, table="orders", record_id=order.id)
    orders_recorded.send(session, tenant_id=tenant_id, order_ids=[order.id])
    return order, True


def ingest_refund(
    session: Session, *, tenant_id: str, data: dict, now: datetime | None = None
) -> tuple[OrderRefund, bool]:
    """A refund or partial refund of a recorded order; replays return the first record.

    A refund is dated `refunded_at` (never before its order, never ahead of the clock) and
    recorded `now`: its clawback lands in the month it is recorded (commissions.events)."""
    now = now or utcnow()
    order = session.scalar(
        select(Order)
        .where(
            Order.tenant_id == tenant_id,
            Order.channel == data["channel"],
            Order.order_no == data["order_no"],
        )
        .with_for_update()
    )
    if order is None:
        raise NotFound(f"No {data['channel']} order {data['order_no']} recorded.")
    existing = session.scalar(
        select(OrderRefund).where(
            OrderRefund.order_id == order.id, OrderRefund.refund_no == data["refund_no"]
        )
    )
    if existing is not None:
        if existing.amount_fen != data["amount_fen"]:
            raise Conflict(
                "This refund number was already recorded with another amount.",
                errors={"refund_no": ["Recorded before with a different amount."]},
            )
        return existing, False
    if data.get("refunded_at") is not None:
        refunded_at = check_fact_time(
            "refunded_at", data["refunded_at"], now=now, after=order.ordered_at, after_what="order"
        )
    else:  # now; an order stamped a little ahead (clock skew) is not refunded before it
        refunded_at = max(now, order.ordered_at)
    if order.refunded_fen + data["amount_fen"] > order.amount_fen:
        left = order.amount_fen - order.refunded_fen
        raise InvalidInput(errors={"amount_fen": [f"At most {left} fen is left to refund."]})
    refund = OrderRefund(
        tenant_id=tenant_id,
        order_id=order.id,
        refund_no=data["refund_no"],
        amount_fen=data["amount_fen"],
        refunded_at=refunded_at,
        created_at=now,
    )
    session.add(refund)
    order.refunded_fen += data["amount_fen"]
    session.flush()
    member = session.get_one(Member, order.member_id)
    recompute_stage(session, member, now)
    log_member(session, member)
    log_member(session, member, table="orders", record_id=order.id)
    refunds_recorded.send(session, tenant_id=tenant_id, refund_ids=[refund.id])
    return refund, True


def note_coupon_discounts(session: Session, discounts: dict[str, int]) -> None:
    """Orders carry what their coupons took off ({order id: fen}); phones learn of it."""
    for order in session.scalars(select(Order).where(Order.id.in_(discounts))):
        if order.coupon_discount_fen != discounts[order.id]:
            order.coupon_discount_fen = discounts[order.id]
            member = session.get_one(Member, order.member_id)
            log_member(session, member, table="orders", record_id=order.id)


def learn_from_order(member: Member, *, buyer_name: str | None, store_id: str | None) -> None:
    """What an order tells about its buyer: a name when the member has none (recruited by a
    scan), and the order's store as home when the member has no guide and no store yet (so
    that store's manager finds them in its pool)."""
    if buyer_name and not (member.name or "").strip():
        member.name = buyer_name
    if store_id and member.store_id is None and member.guide_id is None:
        member.store_id = store_id


def spend_of(member_id: str | BindParameter) -> list:
    """Order count and net spend as scalar subqueries, for a statement that reads more
    besides (the card); `spend_from` reads them back."""
    mine = Order.member_id == member_id
    return [
        select(func.count(Order.id)).where(mine).scalar_subquery(),
        select(func.coalesce(func.sum(Order.amount_fen - Order.refunded_fen), 0))
        .where(mine)
        .scalar_subquery(),
    ]


def spend_from(values) -> dict:
    count, spend = values
    return {"orders": count, "total_spend_fen": int(spend)}


def _store_id(session: Session, tenant_id: str, code: str | None) -> str | None:
    if not code:
        return None
    store_id = session.scalar(
        select(Store.id).where(Store.tenant_id == tenant_id, Store.code == code)
    )
    if store_id is None:
        raise InvalidInput(errors={"store_code": [f"No store with code {code}."]})
    return store_id
