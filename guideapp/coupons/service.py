"""Coupon use cases: templates, a member's wallet, a guide's issue, a till's redemption."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, and_, bindparam, case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from guideapp import policy
from guideapp.coupons import issuance, redemption, wallets
from guideapp.coupons.access import ISSUE, REDEEM
from guideapp.coupons.models import Coupon, CouponTemplate
from guideapp.db import UTCDateTime, new_id, utcnow
from guideapp.errors import Conflict, InvalidInput, Unauthorized
from guideapp.members.identity import follow_merges
from guideapp.members.models import Member
from guideapp.org.models import Region, Store
from guideapp.pagination import paginate
from guideapp.policy.actor import Actor
from guideapp.policy.references import resolve_id, resolve_ids
from guideapp.statements import Prebuilt, record_columns
from guideapp.tasks.models import Task, TaskTarget

# Fields an issued coupon promises: fixed once the first coupon is out.
PROMISED = (
    "kind",
    "amount_off_fen",
    "percent_off_bp",
    "max_discount_fen",
    "gift_item",
    "threshold_fen",
    "valid_from",
    "valid_to",
    "valid_days",
    "store_ids",
    "region_ids",
    "channels",
    "stackable",
    "return_on_refund",
)
SENT = ("name", "description")  # what a guide sends: a change is a new version


# --- templates ----------------------------------------------------------------------------


def create_template(session: Session, *, actor: Actor, data: dict) -> CouponTemplate:
    """HQ writes tenant templates; a manager writes their store's, usable only there."""
    store_id = None if actor.is_hq else actor.store_id
    template = CouponTemplate(
        id=new_id(), tenant_id=actor.tenant_id, store_id=store_id, created_by=actor.staff_id, **data
    )
    policy.require_write(actor, template, "create")
    if store_id is not None and (data["store_ids"] or data["region_ids"]):
        raise InvalidInput(errors={"store_ids": ["A store template counts in its own store only."]})
    resolve_ids(session, actor, Store, data["store_ids"], field="store_ids", load=False)
    resolve_ids(session, actor, Region, data["region_ids"], field="region_ids", load=False)
    session.add(template)
    session.flush()
    return template


def get_template(
    session: Session, *, actor: Actor, template_id: str, action: str | None = None
) -> CouponTemplate:
    if action is None:
        return policy.get_visible(
            session, actor, CouponTemplate, template_id, label="Coupon template"
        )
    return policy.get_writable(session, actor, CouponTemplate, template_id, action)


def update_template(session: Session, *, actor: Actor, template_id: str, data: dict):
    template = issuance.lock_template(session, tenant_id=actor.tenant_id, template_id=template_id)
    template = get_template(session, actor=actor, template_id=template.id, action="update")
    stock = data.get("stock_total", template.stock_total)
    if stock is not None and stock < template.issued_count:
        raise Conflict(
            f"{template.issued_count} coupons are already issued.",
            errors={"stock_total": [f"At least {template.issued_count}, the number issued."]},
        )
    low = data.get("low_stock_threshold", template.low_stock_threshold)
    if low is not None and (stock is None or low >= stock):
        raise InvalidInput(
            errors={"low_stock_threshold": ["Below stock_total (and only with a stock)."]}
        )
    resent = any(name in data and data[name] != getattr(template, name) for name in SENT)
    if resent:
        template.version += 1
        wallets.log_template_coupons(session, template)  # phones show its name and text
    for name, value in data.items():
        setattr(template, name, value)
    if template.low_stock_at and (
        stock is None or low is None or stock - template.issued_count > low
    ):
        template.low_stock_at = None  # restocked: the next fall alerts again
    template.updated_at = utcnow()
    session.flush()
    return template


def list_templates(
    session: Session, *, actor: Actor, limit: int, cursor, active=None, low_stock=None
):
    stmt = policy.scoped_select(actor, CouponTemplate)
    if active is not None:
        stmt = stmt.where(CouponTemplate.active.is_(active))
    if low_stock is not None:
        stmt = stmt.where(
            CouponTemplate.low_stock_at.is_not(None)
            if low_stock
            else CouponTemplate.low_stock_at.is_(None)
        )
    return paginate(
        session,
        stmt,
        [CouponTemplate.created_at, CouponTemplate.id],
        limit=limit,
        cursor=cursor,
        descending=True,
    )


# --- wallet -------------------------------------------------------------------------------


def status(coupon: Coupon, now: datetime) -> str:
    """What the member sees: an available coupon past its end is expired, even before the
    scheduler's sweep marks it."""
    if coupon.state == "available" and now >= coupon.valid_to:
        return "expired"
    return coupon.state


def present(rows, now: datetime | None = None) -> list[dict]:
    """(Coupon, CouponTemplate) pairs as the wallet shows them."""
    now = now or utcnow()
    out = []
    for coupon, template in rows:
        item = {c.key: getattr(coupon, c.key) for c in Coupon.__table__.columns}
        item.update(
            status=status(coupon, now),
            state_reason=coupon.state_reason
            or ("expired" if status(coupon, now) == "expired" else None),
            name=template.name,
            kind=template.kind,
            amount_off_fen=template.amount_off_fen,
            percent_off_bp=template.percent_off_bp,
            max_discount_fen=template.max_discount_fen,
            gift_item=template.gift_item,
            threshold_fen=template.threshold_fen,
            description=template.description,
        )
        out.append(item)
    return out


def with_templates(session: Session, coupons) -> list[tuple]:
    """(coupon, its template) pairs: the templates in one query."""
    ids = {c.template_id for c in coupons}
    found = {
        t.id: t for t in session.scalars(select(CouponTemplate).where(CouponTemplate.id.in_(ids)))
    }
    return [(c, found[c.template_id]) for c in coupons]


def wallet_select(
    member_id: str | BindParameter, status_filter: str | None, now: datetime | BindParameter
):
    stmt = select(Coupon).where(Coupon.member_id == member_id)
    if status_filter == "available":
        stmt = stmt.where(Coupon.state == "available", Coupon.valid_to > now)
    elif status_filter == "expired":
        stmt = stmt.where(
            (Coupon.state == "expired") | ((Coupon.state == "available") & (Coupon.valid_to <= now))
        )
    elif status_filter:
        stmt = stmt.where(Coupon.state == status_filter)
    return stmt


def wallet(session: Session, *, actor: Actor, member_id: str, limit: int, cursor, status=None):
    """A member's coupons, newest first (members the caller may see: 404 otherwise)."""
    member = policy.get_visible(session, actor, Member, member_id)
    return _wallet_page(session, member.id, status, limit=limit, cursor=cursor)


def member_wallet(
    session: Session, *, tenant_id: str, member_id: str, limit: int, cursor, status=None
):
    """The signed-in member's own coupons (member-facing pages), newest first: the member
    comes from their member token, never from the request."""
    member = follow_merges(
        session,
        session.scalar(select(Member).where(Member.tenant_id == tenant_id, Member.id == member_id)),
    )
    if member is None or member.state != "active":
        raise Unauthorized("This member session has ended: sign in again.")
    return _wallet_page(session, member.id, status, limit=limit, cursor=cursor)


def _wallet_page(session: Session, member_id: str, status, *, limit: int, cursor) -> dict:
    now = utcnow()
    page = paginate(
        session,
        wallet_select(member_id, status, now),
        [Coupon.issued_at, Coupon.id],
        limit=limit,
        cursor=cursor,
        descending=True,
    )
    items = present(with_templates(session, page["items"]), now)
    return {"items": items, "next_cursor": page["next_cursor"]}


def card_section(session: Session, *, actor: Actor, member) -> dict:
    """The member card's wallet: available coupons (soonest to expire first) and counts,
    in two statements (the coupons with their templates; every count at once)."""
    now = utcnow()
    params = {"member_id": member.id, "now": now}
    rows = _CARD_WALLET.execute(session, params).records_of("coupon", "template")
    available, used, expired = _CARD_COUNTS.execute(session, params)[0]
    return {
        "coupons": present(rows, now),
        "coupon_counts": {"available": available, "used": used, "expired": expired},
    }


def _card_counts_statement(_dialect, _variant):
    now = bindparam("now", type_=UTCDateTime())
    live = and_(Coupon.state == "available", Coupon.valid_to > now)
    lapsed = (Coupon.state == "expired") | (
        (Coupon.state == "available") & (Coupon.valid_to <= now)
    )
    return select(
        func.count(case((live, 1))),
        func.count(case((Coupon.state == "used", 1))),
        func.count(case((lapsed, 1))),
    ).where(Coupon.member_id == bindparam("member_id", type_=String()))


_CARD_WALLET = Prebuilt(
    lambda _dialect, _variant: (
        wallet_select(
            bindparam("member_id", type_=String()),
            "available",
            bindparam("now", type_=UTCDateTime()),
        )
        .with_only_columns(
            *record_columns(Coupon, "coupon"), *record_columns(CouponTemplate, "template")
        )
        .join(CouponTemplate, CouponTemplate.id == Coupon.template_id)
        .order_by(Coupon.valid_to, Coupon.id)
        .limit(20)
    ),
    reads=True,
)
_CARD_COUNTS = Prebuilt(_card_counts_statement, reads=True)


# --- issue by staff -----------------------------------------------------------------------


def issue_to_member(
    session: Session,
    *,
    actor: Actor,
    member_id: str,
    template_id: str,
    task_id: str | None = None,
    key: str | None = None,
    coupon_id: str | None = None,
    now: datetime | None = None,
) -> tuple[Coupon, bool]:
    """A guide or manager sends a member they may see a coupon they may send; from a task,
    the task's campaign is kept. `key` (a pushed record's id) makes a retry harmless;
    `coupon_id` is the id the phone gave the coupon offline."""
    member = policy.get_visible(session, actor, Member, member_id)
    template = get_template(session, actor=actor, template_id=template_id)
    policy.require(actor, ISSUE, template)
    if not template.active:
        raise Conflict("This coupon template is paused.", errors={"template_id": ["Paused."]})
    task = None
    if task_id is not None:
        task = resolve_id(
            session,
            actor,
            Task,
            task_id,
            field="task_id",
            where=[
                Task.id.in_(select(TaskTarget.task_id).where(TaskTarget.member_id == member.id))
            ],
            what="task of this member",
        )
    template = issuance.lock_template(session, tenant_id=actor.tenant_id, template_id=template.id)
    how = issuance.Issue(
        source="staff",
        key=lambda m: key or f"staff:{new_id()}",
        issued_by=actor.staff_id,
        store_id=actor.store_id,
        task_id=task.id if task else None,
        campaign_id=task.campaign_id if task else None,
        coupon_id=coupon_id,
    )
    return issuance.issue_one(session, template=template, member_id=member.id, how=how, now=now)


# --- redemption at a till -----------------------------------------------------------------


def redeem(session: Session, *, actor: Actor, data: dict, now: datetime | None = None) -> dict:
    """HQ's POS integration redeems in any store; store staff at their own store."""
    if bool(data.get("store_id")) == bool(data.get("store_code")):
        raise InvalidInput(errors={"store_id": ["Give the till's store_id or store_code."]})
    till = redemption.read_till(
        session,
        tenant_id=actor.tenant_id,
        store_id=data.get("store_id"),
        store_code=data.get("store_code"),
        codes=data["codes"],
        channel=data["channel"],
        order_no=data["order_no"],
    )
    if till.store is None:
        raise InvalidInput(errors={"store_id": ["No such store."]})
    policy.require(actor, REDEEM, till.store)
    return redemption.redeem(
        session,
        tenant_id=actor.tenant_id,
        till=till,
        channel=data["channel"],
        order_no=data["order_no"],
        amount_fen=data["amount_fen"],
        redeemed_by=actor.staff_id,
        now=now,
    )


def present_one(session: Session, coupon: Coupon) -> dict:
    return present([(coupon, session.get_one(CouponTemplate, coupon.template_id))])[0]
