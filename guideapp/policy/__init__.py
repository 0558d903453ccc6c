"""Who may see and change what, decided here and nowhere else (deny by default).

Every domain registers, per model, a read rule (a SQL filter added to the query, so
invisible rows are never loaded) and a write rule (actor, record, action) -> bool, plus
named decisions that are not about one model's rows (who sees a full phone, who feeds
orders). A model with no rule is invisible to everyone; a decision nobody registered is
refused. Records outside the read rule are 404, not 403, so ids from another store or
tenant cannot be probed.

This module is a leaf: it imports no domain. The domains' rules live in each domain's
`access.py` and are registered by `guideapp.access.register_access_rules()`, called from
create_app (and so from the CLI) and from the tests.
"""

from __future__ import annotations

from typing import Any

from typing import Callable, cast

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BooleanClauseList

from guideapp.policy.actor import Actor
from guideapp.errors import Forbidden, NotFound

ReadRule = Callable[[Actor], ColumnElement[bool]]
WriteRule = Callable[[Actor, object, str], bool]
Decision = Callable[..., bool]

_read_rules: dict[type, ReadRule] = {}
_write_rules: dict[type, WriteRule] = {}
_decisions: dict[str, tuple[Decision, str]] = {}


# --- registration (called by each domain's access.register()) -------------------------


def register_rules(
    model: type[Any], *, read: ReadRule | None = None, write: WriteRule | None = None
) -> None:
    """The read and/or write rule of `model`; registering again replaces (idempotent)."""
    if read is not None:
        _read_rules[model] = read
    if write is not None:
        _write_rules[model] = write


def register_decision(name: str, decision: Decision, *, refusal: str) -> None:
    """A named yes/no question, `decision(actor, *args)`; `refusal` is the 403 message."""
    _decisions[name] = (decision, refusal)


def registered_models() -> set[type]:
    return set(_read_rules) | set(_write_rules)


# Rule shapes more than one domain uses.


def whole_tenant(actor: Actor) -> ColumnElement[bool]:
    return true()


def hq_reads(actor: Actor) -> ColumnElement[bool]:
    return true() if actor.is_hq else false()


def hq_writes(actor: Actor, record: object, action: str) -> bool:
    return actor.is_hq


def store_or_hq_level(model: type[Any]) -> ReadRule:
    """HQ sees every row; staff the tenant-level rows (no store) and their own store's."""

    def rule(actor: Actor) -> ColumnElement[bool]:
        if actor.is_hq:
            return true()
        return or_(model.store_id.is_(None), model.store_id == actor.store_id)

    return rule


def own_or_store_pool(store_id, owner_id) -> ReadRule:
    """HQ sees every row; a manager their store's; anyone else the rows they own and their
    store's unowned pool (members nobody is bound to, tasks nobody has claimed)."""

    def rule(actor: Actor) -> ColumnElement[bool]:
        if actor.is_hq:
            return true()
        if actor.is_manager:
            return store_id == actor.store_id
        return or_(owner_id == actor.staff_id, and_(store_id == actor.store_id, owner_id.is_(None)))

    return rule


# --- questions ----------------------------------------------------------------------------


def visible(actor: Actor, model: type[Any]) -> ColumnElement[bool]:
    """The filter for rows of `model` the actor may read; the tenant fence is always on."""
    rule = _read_rules.get(model)
    if rule is None:
        return false()
    return and_(in_tenant(actor, model), rule(actor))


def scoped_select(actor: Actor, model: type[Any]) -> Select:
    return select(model).where(visible(actor, model))


def visible_branches(actor: Actor, model: type[Any]) -> list[ColumnElement[bool]]:
    """`visible(actor, model)` as conditions whose OR is exactly that filter, one per side of
    the read rule's top-level OR, each behind the tenant fence (a rule with no OR: one).

    For a keyset page over an OR (a guide's own members or the store's pool): each side
    walks its own index in id order. Added on top of the whole OR instead, a side makes
    the planner count its condition twice, misjudge it as rare and read and sort every
    matching row."""
    rule = _read_rules.get(model)
    if rule is None:
        return [false()]
    condition = rule(actor)
    sides = (
        list(condition.clauses)
        if isinstance(condition, BooleanClauseList) and condition.operator is operators.or_
        else [condition]
    )
    return [and_(in_tenant(actor, model), side) for side in sides]


def get_visible(
    session: Session,
    actor: Actor,
    model: type[Any],
    record_id: str,
    *,
    label=None,
    for_update: bool = False,
):
    """The record if the actor may see it; `for_update` row-locks it until commit."""
    stmt = scoped_select(actor, model).where(model.id == record_id)
    record = session.scalar(stmt.with_for_update() if for_update else stmt)
    if record is None:
        raise NotFound(f"{label or model.__name__} {record_id} not found.")
    return record


def can_write(actor: Actor, record: object, action: str) -> bool:
    rule = _write_rules.get(type(record))
    return bool(rule and record_tenant(record) == actor.tenant_id and rule(actor, record, action))


def require_write(actor: Actor, record: object, action: str) -> None:
    if not can_write(actor, record, action):
        raise Forbidden(f"Your role ({actor.role}) may not {action} this {_label(record)}.")


def get_writable(
    session: Session,
    actor: Actor,
    model: type[Any],
    record_id: str,
    action: str,
    *,
    for_update: bool = False,
):
    record = get_visible(session, actor, model, record_id, for_update=for_update)
    require_write(actor, record, action)
    return record


def in_tenant(actor: Actor, model: type[Any]) -> ColumnElement[bool]:
    """The tenant fence alone, without the read rule."""
    tenant_column = model.id if model.__name__ == "Tenant" else model.tenant_id
    return tenant_column == actor.tenant_id


def get_in_tenant(session: Session, actor: Actor, model: type[Any], record_ids) -> dict:
    """id -> record behind the tenant fence only, in one query. For the few callers that
    must know of records the actor can no longer read (the sync push's "server wins": a
    task handed to another guide since the phone's last pull)."""
    wanted = {i for i in record_ids if isinstance(i, str)}
    if not wanted:
        return {}
    return {
        r.id: r
        for r in session.scalars(select(model).where(model.id.in_(wanted), in_tenant(actor, model)))
    }


def allows(actor: Actor, name: str, *args) -> bool:
    """The named decision for this actor (and its arguments); unknown names are refused."""
    found = _decisions.get(name)
    return bool(found and found[0](actor, *args))


def require(actor: Actor, name: str, *args) -> None:
    if not allows(actor, name, *args):
        found = _decisions.get(name)
        raise Forbidden(found[1] if found else f"Your role ({actor.role}) may not {name}.")


def record_tenant(record: object) -> str | None:
    if type(record).__name__ == "Tenant":
        return cast(Any, record).id
    return getattr(record, "tenant_id", None)


def _label(record: object) -> str:
    return type(record).__name__.lower()
