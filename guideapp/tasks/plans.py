"""HQ's plans: SOP rules and the marketing calendar (the scheduler turns them into tasks)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.errors import InvalidInput
from guideapp.pagination import paginate
from guideapp.tasks.models import CalendarItem, SopRule
from guideapp.tasks.references import check_params, check_suggestions, check_target


def create_rule(session: Session, *, actor: Actor, data: dict) -> SopRule:
    rule = SopRule(tenant_id=actor.tenant_id, created_by=actor.staff_id, **data)
    policy.require_write(actor, rule, "create")
    check_suggestions(session, actor, data)
    check_params(session, actor, data.get("params") or {})
    session.add(rule)
    session.flush()
    return rule


def set_rule_active(session: Session, *, actor: Actor, rule_id: str, active: bool) -> SopRule:
    rule = policy.get_writable(session, actor, SopRule, rule_id, "update")
    rule.active = active
    session.flush()
    return rule


def list_rules(session: Session, *, actor: Actor, limit: int, cursor: str | None):
    return paginate(
        session, policy.scoped_select(actor, SopRule), [SopRule.id], limit=limit, cursor=cursor
    )


def plan_day(session: Session, *, actor: Actor, data: dict) -> CalendarItem:
    item = CalendarItem(tenant_id=actor.tenant_id, created_by=actor.staff_id, **data)
    policy.require_write(actor, item, "create")
    check_target(session, actor, data["target"])
    check_suggestions(session, actor, data, material_field="material_id", reply_field="reply_id")
    session.add(item)
    session.flush()
    return item


def calendar(
    session: Session, *, actor: Actor, start: date, end: date, limit: int, cursor: str | None
):
    if end < start or (end - start).days > 366:
        raise InvalidInput(errors={"end": ["Give an end on or after start, within a year."]})
    stmt = policy.scoped_select(actor, CalendarItem).where(CalendarItem.day.between(start, end))
    return paginate(session, stmt, [CalendarItem.day, CalendarItem.id], limit=limit, cursor=cursor)
