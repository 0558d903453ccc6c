"""A coupon used at a till, exactly once; given back when its order is refunded in full.

"Exactly once" is one conditional UPDATE (`... SET state = 'used' WHERE id = ? AND
state = 'available'`): two tills redeeming the same coupon at the same moment both run
it, PostgreSQL makes the second wait for the first's row lock, re-checks the condition
and touches nothing, and the second till gets a 409. A till that retries the same
(coupon, channel, order number) gets its first answer again.

A redemption is three round trips besides the login check and the commit's change-log
stamp: one SELECT (`read_till`: store, coupons, templates, members' scopes, the order and
whether it has coupons already), and on PostgreSQL one statement that marks the coupons
used and writes their redemptions (`_use`). Only a retry or a second coupon on an order
reads that order's earlier redemptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    String,
    null,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from guideapp.changelog import log_change, stamp_ctes, stamp_parameters
from guideapp.coupons import rules
from guideapp.coupons.models import Coupon, CouponRedemption, CouponTemplate
from guideapp.db import any_of, any_param, insert_rows, new_id, unnest_columns, utcnow
from guideapp.statements import Prebuilt
from guideapp.errors import Conflict, InvalidInput, NotFound
from guideapp.members.identity import log_member, member_scopes
from guideapp.members.models import Member, Order, OrderRefund
from guideapp.members.orders import note_coupon_discounts
from guideapp.org.models import Store


COUPON = (Coupon, ("id", "code", "state", "valid_from", "valid_to", "template_id", "member_id"))
TEMPLATE = (
    CouponTemplate,
    (
        "id",
        "name",
        "kind",
        "gift_item",
        "amount_off_fen",
        "percent_off_bp",
        "max_discount_fen",
        "threshold_fen",
        "store_id",
        "store_ids",
        "region_ids",
        "channels",
        "stackable",
    ),
)
MEMBER = (Member, ("id", "tenant_id", "guide_id", "store_id"))  # the change log's scopes
PARTS = {"coupon": COUPON, "template": TEMPLATE, "member": MEMBER}


@dataclass
class Till:
    """What one round trip found for a till's request: its store (None: not in the
    tenant), the scanned coupons with their templates and members' scopes, the order if it
    has reached us, and whether coupons were already redeemed on that order."""

    store: Any  # .id, .region_id
    found: dict  # code -> namespace of .coupon, .template, .member
    wanted: list[str]  # the scanned codes, normalised, in the order applied
    order_id: str | None
    order_has_coupons: bool


def _till_statement(dialect: str, variant: tuple[str, bool]):
    """read_till's SELECT, built once per dialect, store key (`id` or `code`) and whether
    the till scanned several codes. One code is `code = :code`, not `= ANY(:codes)`:
    PostgreSQL then keeps one generic plan for the prepared statement instead of planning
    each execution again (it guesses ten elements for an array parameter, which makes the
    generic plan look dearer than it is; planning was two thirds of the server's time)."""
    by, several = variant
    tenant = bindparam("tenant_id", type_=String)
    channel = bindparam("channel", type_=String)
    order_no = bindparam("order_no", type_=String)
    order = select(Order.id).where(
        Order.tenant_id == tenant, Order.channel == channel, Order.order_no == order_no
    )
    earlier = select(CouponRedemption.id).where(
        CouponRedemption.tenant_id == tenant,
        CouponRedemption.channel == channel,
        CouponRedemption.order_no == order_no,
        CouponRedemption.reversed_at.is_(None),
    )
    columns = [
        getattr(model, name).label(f"{part}__{name}")
        for part, (model, names) in PARTS.items()
        for name in names
    ]
    return (
        select(
            Store.id.label("store__id"),
            Store.region_id.label("store__region_id"),
            order.scalar_subquery().label("order_id"),
            exists(earlier).label("order_has_coupons"),
            *columns,
        )
        .select_from(Store)
        .outerjoin(
            Coupon,
            and_(
                Coupon.tenant_id == tenant,
                any_param(dialect, Coupon.code, "codes")
                if several
                else Coupon.code == bindparam("code", type_=String),
            ),
        )
        .outerjoin(CouponTemplate, CouponTemplate.id == Coupon.template_id)
        .outerjoin(Member, Member.id == Coupon.member_id)
        .where(Store.tenant_id == tenant, getattr(Store, by) == bindparam("store"))
    )


_TILL = Prebuilt(_till_statement, reads=True)


def read_till(
    session: Session,
    *,
    tenant_id: str,
    store_id: str | None,
    store_code: str | None,
    codes: list[str],
    channel: str,
    order_no: str,
) -> Till:
    """The store, the scanned coupons, the order and whether it has coupons already: one
    SELECT, driven by the store (a row per coupon found, or one row with NULL coupon
    columns; no row when the store is not in the tenant)."""
    wanted = list(dict.fromkeys(rules.normalise_code(c) for c in codes))
    several = len(wanted) > 1
    params: dict[str, Any] = {
        "tenant_id": tenant_id,
        "channel": channel,
        "order_no": order_no,
        "store": store_id or store_code,
        **({"codes": wanted} if several else {"code": wanted[0]}),
    }
    variant = ("id" if store_id else "code", several)
    rows = _TILL.execute(session, params, variant=variant).mappings()
    if not rows:
        return Till(None, {}, wanted, None, False)
    first = rows[0]
    store = SimpleNamespace(id=first["store__id"], region_id=first["store__region_id"])
    found = {
        row["coupon__code"]: SimpleNamespace(
            **{
                part: SimpleNamespace(**{n: row[f"{part}__{n}"] for n in names})
                for part, (_, names) in PARTS.items()
            }
        )
        for row in rows
        if row["coupon__id"] is not None
    }
    return Till(store, found, wanted, first["order_id"], bool(first["order_has_coupons"]))


def redeem(
    session: Session,
    *,
    tenant_id: str,
    till: Till,
    channel: str,
    order_no: str,
    amount_fen: int,
    redeemed_by: str | None,
    now: datetime | None = None,
) -> dict:
    """Use the till's coupons on one order at its store: every check, then every coupon
    marked used, or nothing at all (the first refusal rolls the request back)."""
    now = now or utcnow()
    for code in till.wanted:
        if code not in till.found:
            raise NotFound(f"No coupon with code {code}.", errors={"codes": [code]})
    scanned = [till.found[c] for c in till.wanted]
    earlier = _earlier(session, tenant_id, channel, order_no) if till.order_has_coupons else []
    on_order = {r.coupon_id for r in earlier}
    if all(row.coupon.id in on_order for row in scanned):  # a till's retry: its first answer
        return _answer(session, channel, order_no, amount_fen, earlier, scanned, created=False)
    new = [row for row in scanned if row.coupon.id not in on_order]
    _check_stacking(new, list(on_order), session)
    left = amount_fen - sum(r.discount_fen for r in earlier)
    made = []
    for row in new:
        coupon, template = row.coupon, row.template
        if coupon.state == "used":
            _refuse_used(session, coupon)
        _check_usable(
            coupon, template, store=till.store, channel=channel, amount_fen=amount_fen, now=now
        )
        off = rules.discount_fen(
            kind=template.kind,
            amount_fen=left,
            amount_off_fen=template.amount_off_fen,
            percent_off_bp=template.percent_off_bp,
            max_discount_fen=template.max_discount_fen,
        )
        made.append(
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "coupon_id": coupon.id,
                "channel": channel,
                "order_no": order_no,
                "store_id": till.store.id,
                "amount_fen": amount_fen,
                "discount_fen": off,
                "order_id": till.order_id,
                "redeemed_by": redeemed_by,
                "redeemed_at": now,
                "reversed_at": None,
            }
        )
        left -= off
    logged = [
        {"table_name": "coupons", "record_id": row.coupon.id, "scope": scope, "deleted": False}
        for row in new
        for scope in member_scopes(row.member)
    ]
    coupons = [row.coupon for row in new]
    _use(session, tenant_id, coupons, made, logged, now, stamp=till.order_id is None)
    if till.order_id is not None:
        note_coupon_discounts(session, _discounts(session, [till.order_id]))
    redemptions = [*earlier, *(SimpleNamespace(**r) for r in made)]
    return _answer(session, channel, order_no, amount_fen, redemptions, scanned, created=True)


def _earlier(session: Session, tenant_id: str, channel: str, order_no: str) -> list:
    return list(
        session.scalars(
            select(CouponRedemption).where(
                CouponRedemption.tenant_id == tenant_id,
                CouponRedemption.channel == channel,
                CouponRedemption.order_no == order_no,
                CouponRedemption.reversed_at.is_(None),
            )
        ).all()
    )


REDEMPTION_COLUMNS = (
    "id",
    "tenant_id",
    "coupon_id",
    "channel",
    "order_no",
    "store_id",
    "amount_fen",
    "discount_fen",
    "order_id",
    "redeemed_by",
    "redeemed_at",
    "reversed_at",
)


def _mark_statement(dialect: str, variant: tuple[bool, bool]):
    """available -> used, for the coupons named. On PostgreSQL one statement also writes
    their redemption rows and, `stamped`, their change-log rows (one round trip, not three):

        WITH used AS (UPDATE coupons ... RETURNING id),
             redeemed AS (INSERT INTO coupon_redemptions SELECT <the rows> JOIN used ...),
             bumped AS (<the tenant's counter, if used has rows>), logged AS (<the log>)
        SELECT coupon_id, (SELECT max(seq) FROM logged) FROM redeemed

    so a coupon the UPDATE did not take gets no row. The rows are one bound array per
    column (unnest); one coupon's are plain parameters, for a generic plan (as in
    _till_statement)."""
    several, stamped = variant
    tenant = bindparam("tenant", type_=String)  # (a column's name would be SET)
    now = bindparam("now", type_=Coupon.used_at.type)
    mark = (
        update(Coupon)
        .where(
            Coupon.tenant_id == tenant,
            any_param(dialect, Coupon.id, "ids") if several else Coupon.id == bindparam("coupon"),
            Coupon.state == "available",
        )
        .values(state="used", used_at=now, updated_at=now)
        .returning(Coupon.id)
    )
    if dialect != "postgresql":
        return mark
    used = mark.cte("used")
    table = CouponRedemption.__table__
    if several:
        source = unnest_columns(table, REDEMPTION_COLUMNS, prefix="r_")
        rows = select(*[source.c[n] for n in REDEMPTION_COLUMNS]).join(
            used, used.c.id == source.c.coupon_id
        )
    else:
        rows = select(
            *[bindparam(f"r_{n}", type_=table.c[n].type).label(n) for n in REDEMPTION_COLUMNS]
        ).select_from(used)
    redeemed = (
        insert(CouponRedemption)
        .from_select(list(REDEMPTION_COLUMNS), rows)
        .returning(CouponRedemption.coupon_id)
        .cte("redeemed")
    )
    if not stamped:
        return select(redeemed.c.coupon_id, null().label("seq")).add_cte(used, redeemed)
    bumped, logged = stamp_ctes(tenant, prefix="log_", when=exists(select(used.c.id)))
    return select(
        redeemed.c.coupon_id, select(func.max(logged.c.seq)).scalar_subquery().label("seq")
    ).add_cte(used, redeemed, bumped, logged)


_MARK = Prebuilt(_mark_statement)


def _use(session: Session, tenant_id: str, coupons: list, made: list, logged: list, now, *, stamp):
    """Each coupon `available -> used` with its redemption row, or a 409 when another till
    got there first (between our read and this write): one statement on PostgreSQL, which
    with `stamp` also stamps the change-log rows `logged`; else they are noted for the
    commit's stamp.

    `stamp` holds the tenant's change counter from here to the commit, so it is only for a
    request that writes nothing else afterwards: a till whose order has reached us updates
    the order next, and a refund holding that order's row while it waits for the counter
    at its commit would then wait for us as we wait for it."""
    ids = [c.id for c in coupons]
    several = len(ids) > 1
    params: dict[str, Any] = {"tenant": tenant_id, "now": now}
    params.update({"ids": ids} if several else {"coupon": ids[0]})
    together = session.get_bind().dialect.name == "postgresql"  # the rows in the same statement
    stamp = stamp and together
    if together:
        params.update(
            {f"r_{n}": [r[n] for r in made] if several else made[0][n] for n in REDEMPTION_COLUMNS}
        )
    if stamp:
        params.update(stamp_parameters(logged, prefix="log_"))
    rows = _MARK.execute(session, params, variant=(several, stamp))
    taken = set(rows.scalars())
    if len(taken) < len(ids):
        lost = next(c for c in coupons if c.id not in taken)
        message = f"Coupon {lost.code} was already used."
        raise Conflict(message, errors={"codes": [message], "reason": ["used"]})
    if stamp and rows[0][1] is None:
        raise RuntimeError(f"tenant {tenant_id} has no sync counter row")
    if not together:
        insert_rows(session, CouponRedemption.__table__, made)
    if not stamp:
        for row in logged:
            log_change(
                session,
                tenant_id=tenant_id,
                table=row["table_name"],
                record_id=row["record_id"],
                scopes=[row["scope"]],
            )


def _last_use_statement(_dialect, _variant):
    return (
        select(CouponRedemption.order_no, CouponRedemption.channel, CouponRedemption.redeemed_at)
        .where(
            CouponRedemption.coupon_id == bindparam("coupon_id", type_=String),
            CouponRedemption.reversed_at.is_(None),
        )
        .order_by(CouponRedemption.redeemed_at.desc())
        .limit(1)
    )


# A read before any write: a till's duplicate is refused without opening a transaction.
_LAST_USE = Prebuilt(_last_use_statement, reads=True)


def _refuse_used(session: Session, coupon):
    """The cashier learns where and when the coupon went."""
    first = next(iter(_LAST_USE.execute(session, {"coupon_id": coupon.id})), None)
    where = f" on order {first[0]} ({first[1]}, {first[2]:%Y-%m-%d %H:%M} UTC)" if first else ""
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


def _check_stacking(new, already_ids, session) -> None:
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
    alone = [row.coupon for row in new if not row.template.stackable]
    if count > 1 and (alone or not all(earlier_templates)):
        code = alone[0].code if alone else new[0].coupon.code
        message = f"Coupon {code} cannot be combined with another coupon on one order."
        raise Conflict(message, errors={"codes": [message], "reason": ["not_stackable"]})


def _answer(session, channel, order_no, amount_fen, redemptions, scanned, *, created: bool):
    """The till's answer; the `scanned` coupons and templates are not read again."""
    by_coupon = {row.coupon.id: (row.coupon, row.template) for row in scanned}
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
