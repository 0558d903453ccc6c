"""Coupons issued by HQ's automation rules: "first purchase, a 1-yuan coupon; second, 20%
off", birthdays, joining, reaching a tier, a win-back after N silent days.

A rule fires once per member and occasion: the coupon's issue_key is
`rule:<rule>:<member>:<occasion>` (unique per tenant), so a replayed event, a repeated or
concurrent tick or a catch-up after downtime issues nothing twice. Orders fire on
`members.orders_recorded`, set-based (one GROUP BY for a whole import batch); the calendar
occasions fire from the scheduler tick (occasions.py).
"""

from __future__ import annotations

from datetime import datetime

from marshmallow import ValidationError
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.coupons import issuance
from guideapp.coupons.models import CouponRule, CouponTemplate
from guideapp.coupons.rule_schemas import check_rule_params
from guideapp.db import any_of, new_id, utcnow
from guideapp.errors import InvalidInput
from guideapp.members.models import Member, Order
from guideapp.pagination import paginate
from guideapp.policy.actor import Actor
from guideapp.policy.references import resolve_id

ORDER_OCCASIONS = ("first_order", "nth_order")

# --- the rules (HQ) -----------------------------------------------------------------------


def create_rule(session: Session, *, actor: Actor, data: dict) -> CouponRule:
    rule = CouponRule(id=new_id(), tenant_id=actor.tenant_id, created_by=actor.staff_id, **data)
    policy.require_write(actor, rule, "create")
    _check_template(session, actor, data["template_id"])
    session.add(rule)
    session.flush()
    return rule


def get_rule(session: Session, *, actor: Actor, rule_id: str) -> CouponRule:
    return policy.get_visible(session, actor, CouponRule, rule_id, label="Coupon rule")


def update_rule(session: Session, *, actor: Actor, rule_id: str, data: dict) -> CouponRule:
    """Rename, retune, change the template, pause. The occasion stays: the coupons already
    issued were issued for it."""
    rule = policy.get_writable(session, actor, CouponRule, rule_id, "update", for_update=True)
    if "params" in data:
        try:
            check_rule_params(rule.occasion, data["params"])
        except ValidationError as error:
            raise InvalidInput(errors=error.normalized_messages()) from None
    if "template_id" in data:
        _check_template(session, actor, data["template_id"])
    for name, value in data.items():
        setattr(rule, name, value)
    session.flush()
    return rule


def list_rules(
    session: Session, *, actor: Actor, limit: int, cursor, occasion=None, active=None
) -> dict:
    stmt = policy.scoped_select(actor, CouponRule)
    if occasion is not None:
        stmt = stmt.where(CouponRule.occasion == occasion)
    if active is not None:
        stmt = stmt.where(CouponRule.active.is_(active))
    return paginate(
        session,
        stmt,
        [CouponRule.created_at, CouponRule.id],
        limit=limit,
        cursor=cursor,
        descending=True,
    )


def _check_template(session: Session, actor: Actor, template_id: str) -> None:
    # Unknown, another tenant's and paused templates get the one answer.
    resolve_id(
        session,
        actor,
        CouponTemplate,
        template_id,
        field="template_id",
        where=[CouponTemplate.active.is_(True)],
        what="active coupon template",
    )


# --- firing -------------------------------------------------------------------------------


def rule_issue(rule: CouponRule, occasion: str) -> issuance.Issue:
    """How a rule's coupons are issued for one occasion (the key makes it exactly once)."""
    prefix = f"rule:{rule.id}:"
    return issuance.Issue(
        source="rule", source_id=rule.id, key=lambda member_id: f"{prefix}{member_id}:{occasion}"
    )


def issuable(template: CouponTemplate, now: datetime) -> bool:
    """A paused template, or a window that has ended, issues nothing (the rule waits)."""
    return template.active and (template.valid_to is None or template.valid_to > now)


def active_rules(session: Session, tenant_id: str, occasions) -> list[CouponRule]:
    return list(
        session.scalars(
            select(CouponRule)
            .where(
                CouponRule.tenant_id == tenant_id,
                CouponRule.active.is_(True),
                CouponRule.occasion.in_(occasions),
            )
            .order_by(CouponRule.created_at, CouponRule.id)
        )
    )


def on_orders_recorded(session: Session, *, tenant_id: str, order_ids: list[str], **_) -> None:
    """members.orders_recorded: each buyer whose paid orders just reached a rule's n (1 for
    first_order) gets the rule's coupon, once (`order:<n>`). A refund later takes nothing
    back; an order refunded in full does not count towards n."""
    rules = active_rules(session, tenant_id, ORDER_OCCASIONS)
    if not rules or not order_ids:
        return
    counts = _order_counts(session, tenant_id, order_ids)
    now = utcnow()
    for rule in rules:
        n = int(rule.params["n"]) if rule.occasion == "nth_order" else 1
        reached = [member for member, total, new in counts if total - new < n <= total]
        if not reached:
            continue
        template = issuance.lock_template(
            session, tenant_id=tenant_id, template_id=rule.template_id
        )
        if issuable(template, now):
            how = rule_issue(rule, f"order:{n}")
            issuance.issue(session, template=template, member_ids=reached, how=how, now=now)


def _order_counts(session: Session, tenant_id: str, order_ids: list[str]) -> list[tuple]:
    """(member, paid orders, paid orders of this batch) for every buyer of the batch, from
    one GROUP BY however big the batch."""
    paid = or_(Order.refunded_fen == 0, Order.refunded_fen < Order.amount_fen)
    in_batch = any_of(session, Order.id, order_ids)
    buyers = select(Order.member_id).where(Order.tenant_id == tenant_id, in_batch)
    # Two orders of one member at once: the second counts after the first commits, even
    # when neither changes the member row (older than the last order); else both count
    # the same and the Nth-order coupon is never issued. NO KEY UPDATE, as the member's
    # own update takes: FOR UPDATE would wait on the other order's foreign-key lock.
    session.execute(
        select(Member.id)
        .where(Member.id.in_(buyers))
        .order_by(Member.id)
        .with_for_update(key_share=True)
    )
    rows = session.execute(
        select(
            Order.member_id,
            func.sum(case((paid, 1), else_=0)),
            func.sum(case((paid & any_of(session, Order.id, order_ids), 1), else_=0)),
        )
        .where(Order.tenant_id == tenant_id, Order.member_id.in_(buyers))
        .group_by(Order.member_id)
        .order_by(Order.member_id)
    ).all()
    return [(member, int(total or 0), int(new or 0)) for member, total, new in rows]
