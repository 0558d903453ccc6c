"""Commission use cases: HQ's rule versions, a guide's earnings, entries by scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.commissions import explain
from guideapp.commissions import rules as maths
from guideapp.commissions.models import CommissionEntry, CommissionRule, CommissionSettlement
from guideapp.commissions.settlement import check_month
from guideapp.db import new_id, utcnow
from guideapp.errors import InvalidInput
from guideapp.org.models import Region, Store, Tenant
from guideapp.pagination import paginate
from guideapp.tasks.models import Campaign

RULE_FIELDS = (
    "name",
    "kind",
    "scope",
    "scope_id",
    "amount_fen",
    "rate_bp",
    "order_basis",
    "tiers",
    "cap_fen",
    "active",
    "effective_from",
    "effective_until",
)


def create_rule(session: Session, *, actor: Actor, data: dict) -> CommissionRule:
    """Version 1 of a new rule (HQ)."""
    policy.require_write(actor, CommissionRule(tenant_id=actor.tenant_id), "create")
    return _version(session, actor, data, rule_key=None, version=1)


def new_version(session: Session, *, actor: Actor, rule_id: str, data: dict) -> CommissionRule:
    """A new version superseding the rule from its effective date; old versions stay as-is."""
    base = policy.get_visible(session, actor, CommissionRule, rule_id, label="Rule")
    policy.require_write(actor, base, "version")
    latest = session.execute(  # `base` itself has the key
        select(CommissionRule)
        .where(
            CommissionRule.tenant_id == actor.tenant_id, CommissionRule.rule_key == base.rule_key
        )
        .order_by(CommissionRule.version.desc())
        .limit(1)
        .with_for_update()
    ).scalar_one()
    policy.require_write(actor, latest, "version")
    if data.get("kind", latest.kind) != latest.kind:
        raise InvalidInput(errors={"kind": ["A new version keeps the rule's kind."]})
    merged = {f: getattr(latest, f) for f in RULE_FIELDS} | data
    merged["effective_from"] = data.get("effective_from") or utcnow()
    if merged["effective_from"] < latest.effective_from:
        raise InvalidInput(
            errors={
                "effective_from": [
                    "A new version cannot take effect before the version it supersedes."
                ]
            }
        )
    return _version(session, actor, merged, rule_key=latest.rule_key, version=latest.version + 1)


def _version(session: Session, actor: Actor, data: dict, *, rule_key, version) -> CommissionRule:
    _validate(session, actor, data)
    rule_id = new_id()
    rule = CommissionRule(
        id=rule_id,
        rule_key=rule_key or rule_id,
        tenant_id=actor.tenant_id,
        version=version,
        created_by=actor.staff_id,
        **{f: data.get(f) for f in RULE_FIELDS if f != "effective_from"},
        effective_from=data.get("effective_from") or utcnow(),
    )
    rule.active = data.get("active", True)
    rule.scope = data.get("scope") or "tenant"
    session.add(rule)
    session.flush()
    return rule


def _validate(session: Session, actor: Actor, data: dict) -> None:
    kind, errors = data["kind"], {}
    if kind == "recruit_bounty" and not data.get("amount_fen"):
        errors["amount_fen"] = ["A bounty needs amount_fen > 0."]
    if kind == "order_percent":
        if not data.get("rate_bp"):
            errors["rate_bp"] = ["A percentage needs rate_bp (basis points) > 0."]
        if data.get("order_basis") not in ("first", "binding"):
            errors["order_basis"] = [
                "first (the first order) or binding (orders in the binding period)."
            ]
    if kind == "tier_bonus" and not data.get("tiers"):
        errors["tiers"] = ["Give tier steps: [{recruits, bonus_fen}, ...]."]
    scope = data.get("scope") or "tenant"
    if scope == "tenant":
        data["scope_id"] = None
    elif not _scope_exists(session, actor.tenant_id, scope, data.get("scope_id")):
        errors["scope_id"] = [f"No {scope} with this id in your brand group."]
    until = data.get("effective_until")
    if until is not None and until <= (data.get("effective_from") or utcnow()):
        errors["effective_until"] = ["Must come after effective_from."]
    if errors:
        raise InvalidInput(errors=errors)


def _scope_exists(session: Session, tenant_id: str, scope: str, scope_id: str | None) -> bool:
    model: type[Any] = {"region": Region, "store": Store, "campaign": Campaign}[scope]
    return (
        bool(scope_id)
        and session.execute(
            select(func.count(model.id)).where(model.id == scope_id, model.tenant_id == tenant_id)
        ).scalar_one()
        > 0
    )


def list_rules(
    session: Session, *, actor: Actor, limit: int, cursor: str | None, rule_key: str | None = None
):
    stmt = policy.scoped_select(actor, CommissionRule)
    if rule_key:
        stmt = stmt.where(CommissionRule.rule_key == rule_key)
    return paginate(
        session,
        stmt,
        [CommissionRule.created_at, CommissionRule.id],
        limit=limit,
        cursor=cursor,
        descending=True,
    )


def get_rule(session: Session, *, actor: Actor, rule_id: str) -> CommissionRule:
    return policy.get_visible(session, actor, CommissionRule, rule_id, label="Rule")


def current_month(session: Session, tenant_id: str, now: datetime | None = None) -> str:
    zone = session.execute(select(Tenant.timezone).where(Tenant.id == tenant_id)).scalar_one()
    return maths.month_of(now or utcnow(), zone)


def my_earnings(
    session: Session, *, actor: Actor, limit: int, month: str | None = None, cursor: str | None
) -> dict:
    """A guide's month: earned, clawed back, net, pending vs settled, entries in words."""
    month = check_month(month) if month else current_month(session, actor.tenant_id)
    mine = (CommissionEntry.guide_id == actor.staff_id, CommissionEntry.accounting_month == month)
    by_kind = dict(
        session.execute(
            select(CommissionEntry.kind, func.sum(CommissionEntry.amount_fen))
            .where(*mine)
            .group_by(CommissionEntry.kind)
        ).all()
    )
    earned = sum(int(v) for k, v in by_kind.items() if v and v > 0)
    clawed = -sum(int(v) for k, v in by_kind.items() if v and v < 0)
    settlement = session.scalar(
        select(CommissionSettlement).where(
            CommissionSettlement.tenant_id == actor.tenant_id, CommissionSettlement.month == month
        )
    )
    state = "open" if settlement is None else settlement.state
    net = earned - clawed
    page = paginate(
        session,
        policy.scoped_select(actor, CommissionEntry).where(*mine),
        [CommissionEntry.created_at, CommissionEntry.id],
        limit=limit,
        cursor=cursor,
        descending=True,
    )
    page["items"] = explain.describe(session, page["items"])
    return {
        "month": month,
        "month_state": state,
        "earned_fen": earned,
        "clawed_back_fen": clawed,
        "net_fen": net,
        "pending_fen": net if settlement is None else 0,
        "settled_fen": 0 if settlement is None else net,
        "summary": explain.summary(month, state, earned, clawed, net),
        "entries": page["items"],
        "next_cursor": page["next_cursor"],
    }


def list_entries(
    session: Session,
    *,
    actor: Actor,
    limit: int,
    month: str | None = None,
    cursor: str | None,
    guide_id: str | None = None,
    store_id: str | None = None,
) -> dict:
    """Entries the caller may see: a guide their own, a manager the store's, HQ all."""
    stmt = policy.scoped_select(actor, CommissionEntry)
    if month:
        stmt = stmt.where(CommissionEntry.accounting_month == check_month(month))
    if guide_id:
        stmt = stmt.where(CommissionEntry.guide_id == guide_id)
    if store_id:
        stmt = stmt.where(CommissionEntry.store_id == store_id)
    page = paginate(
        session,
        stmt,
        [CommissionEntry.created_at, CommissionEntry.id],
        limit=limit,
        cursor=cursor,
        descending=True,
    )
    page["items"] = explain.describe(session, page["items"])
    return page


def get_entry(session: Session, *, actor: Actor, entry_id: str) -> dict:
    entry = policy.get_visible(session, actor, CommissionEntry, entry_id, label="Entry")
    return explain.describe(session, [entry])[0]
