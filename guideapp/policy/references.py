"""Ids that travel in a request body resolve here, through the read rules, or the request is 422.

One answer for "there is no such record" and "it is another store's or another tenant's",
naming the field, so a body cannot probe which ids exist anywhere. Extra conditions (an
active guide of the task's store, say) give the same answer.
"""

from __future__ import annotations

from typing import Any

from typing import Iterable

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from guideapp.policy import visible
from guideapp.policy.actor import Actor
from guideapp.errors import InvalidInput

SHOWN = 5  # unknown ids named in the message, at most


def resolve_ids(
    session: Session,
    actor: Actor,
    model: type[Any],
    ids: Iterable[str] | None,
    *,
    field: str,
    where: Iterable[ColumnElement[bool]] = (),
    what: str | None = None,
    load: bool = True,
) -> list:
    """The records (or, with load=False, the ids) named by `ids`, duplicates dropped, in the
    order given; InvalidInput naming `field` unless every one is visible to the actor and
    matches `where`."""
    wanted = list(dict.fromkeys(ids or ()))
    if not wanted:
        return []
    stmt = select(model if load else model.id).where(
        visible(actor, model), model.id.in_(wanted), *where
    )
    found = {(row.id if load else row): row for row in session.scalars(stmt)}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise unknown(field, missing, what or _label(model))
    return [found[i] for i in wanted]


def resolve_id(
    session: Session,
    actor: Actor,
    model: type[Any],
    record_id: str | None,
    *,
    field: str,
    where: Iterable[ColumnElement[bool]] = (),
    what: str | None = None,
):
    """The record named by `record_id` (None stays None), else InvalidInput naming `field`."""
    if record_id is None:
        return None
    return resolve_ids(session, actor, model, [record_id], field=field, where=where, what=what)[0]


def unknown(field: str, ids: list[str], what: str) -> InvalidInput:
    """The one refusal for ids that are unknown, not the caller's, or not of the right kind.
    A dotted field ("target.store_ids") nests as marshmallow nests a field of a nested schema."""
    shown = ", ".join(str(i) for i in ids[:SHOWN]) + (" …" if len(ids) > SHOWN else "")
    *outer, name = field.split(".")
    errors: dict = {name: [f"No {what} you can use: {shown}."]}
    for part in reversed(outer):
        errors = {part: errors}
    return InvalidInput(errors=errors)


def _label(model: type[Any]) -> str:
    name = model.__name__
    return "".join(" " + c.lower() if c.isupper() else c for c in name).strip()
