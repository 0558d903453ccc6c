"""A coupon used at a till, exactly once; given back when its order is refunded in full.

"Exactly once" is one conditional UPDATE (`... SET state = 'used' WHERE id = ? AND
state = 'available'`): two tills redeeming the same coupon at the same moment both run
it, PostgreSQL makes the second wait for the first's row lock, re-checks the condition
and touches nothing, and the second till gets a 409. A till that retries the same
(coupon, channel, order number) gets its first answer again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select, tuple_, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from guideapp.coupons import rules
from guideapp.coupons.models import Coupon, CouponRedemption, CouponTemplate
from guideapp.db import any_of, rowcount, utcnow
from guideapp.errors import Conflict, InvalidInput, NotFound
from guideapp.members.identity import log_member
from guideapp.members.models import Member, Order, OrderRefund
from guideapp.members.orders import note_coupon_discounts
from guideapp.org.models import Store


def redeem(
    session: Session,
    *,
    tenant_id: str,
    store: Store,
    codes: list[str],
    channel: str,
    order_no: str,
    amount_fen: int,
    redeemed_by: str | None,
    now: datetime | None = None,
) -> dict:
    """Use `codes` on one order at `store`: every check, then every coupon marked used, or
    nothing at all (the first refusal rolls the request back)."""
    now = now or utcnow()
    wanted = list(dict.fromkeys(rules.normalise_code(c) for c in codes))
    # One round trip for the coupons, their templates, members (the change log's scopes:
    # held here, so the session's weak identity map keeps them for log_member) and the
    # order, if it has reached us already.
    order = select(Order.id).where(
        Order.tenant_id == tenant_id, Order.channel == channel, Order.order_no == order_no
    )
    rows = session.execute(
        select(Coupon, CouponTemplate, Member, order.scalar_subquery())
        .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
        .join(Member, Member.id == Coupon.member_id)
        .where(Coupon.tenant_id == tenant_id, any_of(session, Coupon.code, wanted))
    ).all()
    found = {coupon.code: (coupon, template) for coupon, template, *_ in rows}
    for code in wanted:
        if code not in found:
            raise NotFound(f"No coupon with code {code}.", errors={"codes": [code]})
    coupons = [found[c][0] for c in wanted]
    templates = {template.id: template for _, template in found.values()}
    earlier = session.scalars(
        select(CouponRedemption).where(
            CouponRedemption.tenant_id == tenant_id,
            CouponRedemption.channel == channel,
            CouponRedemption.order_no == order_no,
            CouponRedemption.reversed_at.is_(None),
        )
    ).all()
    on_order = {r.coupon_id: r for r in earlier}
    known = {coupon.id: (coupon, template) for coupon, template in found.values()}
    if all(c.id in on_order for c in coupons):  # a till's retry: its first answer
        return _answer(session, channel, order_no, amount_fen, earlier, known, created=False)
    new = [c for c in coupons if c.id not in on_order]
    _check_stacking(new, list(on_order), templates, session)
    left = amount_fen - sum(r.discount_fen for r in earlier)
    order_id = rows[0][3]
    made = []
    for coupon in new:
        template = templates[coupon.template_id]
        if coupon.state == "used":
            _refuse_used(session, coupon)
        _check_usable(
            coupon, template, store=store, channel=channel, amount_fen=amount_fen, now=now
        )
        off = rules.discount_fen(
            kind=template.kind,
            amount_fen=left,
            amount_off_fen=template.amount_off_fen,
            percent_off_bp=template.percent_off_bp,
            max_discount_fen=template.max_discount_fen,
        )
        _mark_used(session, coupon, now)
        redemption = CouponRedemption(
            tenant_id=tenant_id,
            coupon_id=coupon.id,
            channel=channel,
            order_no=order_no,
            store_id=store.id,
            amount_fen=amount_fen,
            discount_fen=off,
            order_id=order_id,
            redeemed_by=redeemed_by,
            redeemed_at=now,
        )
        session.add(redemption)
        made.append(redemption)
        left -= off
    session.flush()
    if order_id is not None:
        note_coupon_discounts(session, _discounts(session, [order_id]))
    return _answer(session, channel, order_no, amount_fen, [*earlier, *made], known, created=True)


def _refuse_used(session: Session, coupon: Coupon):
    """The cashier learns where and when the coupon went."""
    first = session.scalar(
        select(CouponRedemption)
        .where(CouponRedemption.coupon_id == coupon.id, CouponRedemption.reversed_at.is_(None))
        .order_by(CouponRedemption.redeemed_at.desc())
        .limit(1)
    )
    where = (
        f" on order {first.order_no} ({first.channel}, {first.redeemed_at:%Y-%m-%d %H:%M} UTC)"
        if first
        else ""
    )
    message = f"Coupon {coupon.code} was already used{where}."
    raise Conflict(message, errors={"codes": [message], "reason": ["used"]})


def _check_usable(coupon: Coupon, template: CouponTemplate, *, store, channel, amount_fen, now):
    def refuse(error, reason: str, message: str):
        raise error(message, errors={"codes": [message], "reason": [reason]})

    if coupon.state == "used":
        refuse(Conflict, "used", f"Coupon {coupon.code} was already used.")
    if coupon.state == "revoked":
        refuse(Conflict, "revoked", f"Coupon {coupon.code} was withdrawn.")
    if coupon.state == "expired" or now >= coupon.valid_to:
        refuse(Conflict, "expired", f"Coupon {coupon.code} expired on {coupon.valid_to:%Y-%m-%d}.")
    if now < coupon.valid_from:
        refuse(
            Conflict,
            "not_yet_valid",
            f"Coupon {coupon.code} is valid from {coupon.valid_from:%Y-%m-%d}.",
        )
    if not store_allowed(template, store):
        refuse(InvalidInput, "wrong_store", f"Coupon {coupon.code} is not valid in this store.")
    if template.channels and channel not in template.channels:
        refuse(
            InvalidInput,
            "wrong_channel",
            f"Coupon {coupon.code} is valid only on {', '.join(template.channels)}.",
        )
    if amount_fen < template.threshold_fen:
        refuse(
            InvalidInput,
            "below_threshold",
            f"Coupon {coupon.code} needs a spend of at least "
            f"{template.threshold_fen / 100:.2f} yuan.",
        )


def store_allowed(template: CouponTemplate, store: Store) -> bool:
    if template.store_id is not None and template.store_id != store.id:
        return False
    if template.store_ids and store.id not in template.store_ids:
        return False
    return not template.region_ids or store.region_id in template.region_ids


def _check_stacking(new, already_ids, templates, session) -> None:
    """A coupon that does not stack is the only coupon on its order."""
    earlier_templates = (
        session.scalars(
            select(CouponTemplate.stackable)
            .join(Coupon, Coupon.template_id == CouponTemplate.id)
            .where(Coupon.id.in_(already_ids))
        ).all()
        if already_ids
        else []
    )
    count = len(new) + len(earlier_templates)
    alone = [c for c in new if not templates[c.template_id].stackable]
    if count > 1 and (alone or not all(earlier_templates)):
        code = alone[0].code if alone else new[0].code
        message = f"Coupon {code} cannot be combined with another coupon on one order."
        raise Conflict(message, errors={"codes": [message], "reason": ["not_stackable"]})


def _mark_used(session: Session, coupon: Coupon, now: datetime) -> None:
    changed = rowcount(
        session.execute(
            update(Coupon)
            .where(Coupon.id == coupon.id, Coupon.state == "available")
            .values(state="used", used_at=now, updated_at=now)
            .execution_options(synchronize_session=False, preserve_rowcount=True)
        )
    )
    if not changed:  # another till got there first, between our read and this write
        message = f"Coupon {coupon.code} was already used."
        raise Conflict(message, errors={"codes": [message], "reason": ["used"]})
    for name, value in (("state", "used"), ("used_at", now), ("updated_at", now)):
        set_committed_value(coupon, name, value)  # what the UPDATE wrote, without re-reading
    log_member(
        session, session.get_one(Member, coupon.member_id), table="coupons", record_id=coupon.id
    )


def _answer(session, channel, order_no, amount_fen, redemptions, known, *, created: bool):
    """The till's answer; `known` coupons (id -> (coupon, template)) are not read again."""
    by_coupon = dict(known)
    missing = [r.coupon_id for r in redemptions if r.coupon_id not in by_coupon]
    if missing:  # other coupons already on this order
        by_coupon.update(
            (c.id, (c, t))
            for c, t in session.execute(
                select(Coupon, CouponTemplate)
                .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
                .where(Coupon.id.in_(missing))
            ).all()
        )
    discount = sum(r.discount_fen for r in redemptions)
    return {
        "channel": channel,
        "order_no": order_no,
        "amount_fen": amount_fen,
        "discount_fen": discount,
        "pay_fen": max(0, amount_fen - discount),
        "created": created,
        "coupons": [
            {
                "id": r.coupon_id,
                "code": by_coupon[r.coupon_id][0].code,
                "template_id": by_coupon[r.coupon_id][1].id,
                "name": by_coupon[r.coupon_id][1].name,
                "kind": by_coupon[r.coupon_id][1].kind,
                "gift_item": by_coupon[r.coupon_id][1].gift_item,
                "discount_fen": r.discount_fen,
                "redemption_id": r.id,
                "redeemed_at": r.redeemed_at,
            }
            for r in redemptions
        ],
    }


def _discounts(session: Session, order_ids) -> dict[str, int]:
    from sqlalchemy import func

    rows = session.execute(
        select(CouponRedemption.order_id, func.sum(CouponRedemption.discount_fen))
        .where(CouponRedemption.order_id.in_(order_ids), CouponRedemption.reversed_at.is_(None))
        .group_by(CouponRedemption.order_id)
    ).all()
    found = {order_id: int(total) for order_id, total in rows}
    return {order_id: found.get(order_id, 0) for order_id in order_ids}


# --- reactions to orders and refunds (wired in guideapp/wiring.py) ------------------------


def on_orders_recorded(session: Session, *, tenant_id: str, order_ids: list[str], **_) -> None:
    """An order fed after its till redeemed coupons on it now carries them: one UPDATE for
    a whole import batch (by the redemptions' channel + order number index)."""
    batch = select(Order.channel, Order.order_no).where(
        Order.tenant_id == tenant_id, any_of(session, Order.id, order_ids)
    )
    order_of = (
        select(Order.id)
        .where(
            Order.tenant_id == tenant_id,
            Order.channel == CouponRedemption.channel,
            Order.order_no == CouponRedemption.order_no,
        )
        .scalar_subquery()
    )
    linked = session.scalars(
        update(CouponRedemption)
        .where(
            CouponRedemption.tenant_id == tenant_id,
            CouponRedemption.order_id.is_(None),
            tuple_(CouponRedemption.channel, CouponRedemption.order_no).in_(batch),
        )
        .values(order_id=order_of)
        .returning(CouponRedemption.order_id)
        .execution_options(synchronize_session=False)
    ).all()
    if linked:
        note_coupon_discounts(session, _discounts(session, list(dict.fromkeys(linked))))


def on_refunds_recorded(session: Session, *, tenant_id: str, refund_ids: list[str], **_) -> None:
    """An order refunded in full gives its coupons back, where the template says so and the
    coupon is still valid; a partial refund keeps them used."""
    now = utcnow()
    refunded = select(OrderRefund.order_id).where(any_of(session, OrderRefund.id, refund_ids))
    full = session.execute(
        select(Order.id, Order.channel, Order.order_no).where(
            Order.id.in_(refunded), Order.refunded_fen >= Order.amount_fen
        )
    ).all()
    for order_id, channel, order_no in full:
        redemptions = session.scalars(
            select(CouponRedemption).where(
                CouponRedemption.tenant_id == tenant_id,
                CouponRedemption.reversed_at.is_(None),
                and_(CouponRedemption.channel == channel, CouponRedemption.order_no == order_no),
            )
        ).all()
        for redemption in redemptions:
            redemption.reversed_at = now
            coupon = session.get_one(Coupon, redemption.coupon_id)
            template = session.get_one(CouponTemplate, coupon.template_id)
            if not template.return_on_refund:
                continue
            if now < coupon.valid_to:
                coupon.state, coupon.state_reason, coupon.used_at = "available", "refunded", None
            else:
                coupon.state, coupon.state_reason = "expired", "refunded_after_expiry"
            coupon.updated_at = now
            log_member(
                session,
                session.get_one(Member, coupon.member_id),
                table="coupons",
                record_id=coupon.id,
            )
        if redemptions:
            session.flush()
            note_coupon_discounts(session, _discounts(session, [order_id]))
