"""Points for a coupon: a template with a points_cost, the points spent through the members'
points ledger and the coupon issued in the same transaction (both or neither)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.coupons import issuance
from guideapp.coupons.access import ISSUE
from guideapp.coupons.automation import issuable
from guideapp.coupons.models import Coupon, CouponTemplate
from guideapp.coupons.service import present_one
from guideapp.db import new_id, utcnow
from guideapp.errors import Conflict, InvalidInput
from guideapp.members import points
from guideapp.members.models import Member
from guideapp.policy.actor import Actor
from guideapp.policy.references import resolve_id


def exchange_for_member(
    session: Session, *, actor: Actor, member_id: str, template_id: str, now=None
) -> dict:
    """Staff exchange the points of a member they may see (404 otherwise) for a coupon they
    may send (a store template is its store's)."""
    member = policy.get_visible(session, actor, Member, member_id)
    template = resolve_id(
        session, actor, CouponTemplate, template_id, field="template_id", what="coupon template"
    )
    policy.require(actor, ISSUE, template)
    return exchange(session, member=member, template_id=template.id, now=now)


def exchange(
    session: Session,
    *,
    member: Member,
    template_id: str,
    key: str | None = None,
    now: datetime | None = None,
) -> dict:
    """The member's points for one coupon of the tenant's template, for any entry point
    that has resolved the member (staff, the member's own page). `key` (a pushed record's
    id) makes a retry return the first coupon without spending again.

    409 naming the balance when it is too small; the member's row lock makes two
    exchanges at once spend one after the other, never below zero."""
    now = now or utcnow()
    session.execute(select(Member.id).where(Member.id == member.id).with_for_update())
    template = issuance.lock_template(session, tenant_id=member.tenant_id, template_id=template_id)
    if key is not None:
        found = session.scalar(
            select(Coupon).where(Coupon.tenant_id == member.tenant_id, Coupon.issue_key == key)
        )
        if found is not None:
            return _answer(session, found, 0, member)
    cost = template.points_cost
    if cost is None:
        raise InvalidInput(errors={"template_id": ["This coupon is not exchanged for points."]})
    if not issuable(template, now):
        message = "This coupon template is paused or its validity has ended."
        raise Conflict(message, errors={"template_id": [message]})
    balance = points.balance(session, member.id)
    if balance < cost:
        message = f"The member has {balance} points; this coupon costs {cost}."
        raise Conflict(message, errors={"points": [message], "reason": ["not_enough_points"]})
    how = issuance.Issue(source="points", key=lambda _: key or f"points:{new_id()}")
    coupon, _ = issuance.issue_one(
        session, template=template, member_id=member.id, how=how, now=now
    )
    entry = points.add_points(
        session, member=member, kind="spend", points=cost, reason=f"兑换优惠券 {template.name}"
    )
    coupon.source_id = entry.id  # which spend paid for it
    session.flush()
    return _answer(session, coupon, cost, member)


def _answer(session: Session, coupon: Coupon, spent: int, member: Member) -> dict:
    return {
        "coupon": present_one(session, coupon),
        "points_spent": spent,
        "points_balance": points.balance(session, member.id),
    }
