"""Who may see and change what, decided here and nowhere else (deny by default).

Every domain registers, per model, a read rule (a SQL filter added to the query, so
invisible rows are never loaded) and a write rule (actor, record, action) -> bool.
A model with no rule is invisible to everyone. Records outside the read rule are 404,
not 403, so ids from another store or tenant cannot be probed.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import ColumnElement, Select, and_, false, select
from sqlalchemy.orm import Session

from guideapp.auth.scope import Actor
from guideapp.errors import Forbidden, NotFound

ReadRule = Callable[[Actor], ColumnElement[bool]]
WriteRule = Callable[[Actor, object, str], bool]

_read_rules: dict[type, ReadRule] = {}
_write_rules: dict[type, WriteRule] = {}


def read_rule(model: type) -> Callable[[ReadRule], ReadRule]:
    def register(rule: ReadRule) -> ReadRule:
        _read_rules[model] = rule
        return rule

    return register


def write_rule(model: type) -> Callable[[WriteRule], WriteRule]:
    def register(rule: WriteRule) -> WriteRule:
        _write_rules[model] = rule
        return rule

    return register


def visible(actor: Actor, model: type) -> ColumnElement[bool]:
    """The filter for rows of `model` the actor may read; the tenant fence is always on."""
    rule = _read_rules.get(model)
    if rule is None:
        return false()
    tenant_column = model.id if model.__name__ == "Tenant" else model.tenant_id
    return and_(tenant_column == actor.tenant_id, rule(actor))


def scoped_select(actor: Actor, model: type) -> Select:
    return select(model).where(visible(actor, model))


def get_visible(
    session: Session,
    actor: Actor,
    model: type,
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
    model: type,
    record_id: str,
    action: str,
    *,
    for_update: bool = False,
):
    record = get_visible(session, actor, model, record_id, for_update=for_update)
    require_write(actor, record, action)
    return record


def record_tenant(record: object) -> str | None:
    if type(record).__name__ == "Tenant":
        return record.id
    return getattr(record, "tenant_id", None)


def _label(record: object) -> str:
    return type(record).__name__.lower()


# The rules themselves live with the policy so they can be read in one sitting.
from guideapp.auth import rules  # noqa: E402,F401
