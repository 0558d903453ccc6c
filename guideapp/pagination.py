"""One keyset (cursor) pager for every list: page N costs what page 1 costs."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import marshmallow as ma
from sqlalchemy import Integer, Select, and_, bindparam, or_, select, union
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from guideapp import untrusted
from guideapp.dumping import Planned
from guideapp.errors import InvalidInput
from guideapp.statements import Prebuilt

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class CursorArgsSchema(ma.Schema):
    limit = ma.fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=ma.validate.Range(min=1, max=MAX_LIMIT),
        metadata={"description": f"Page size, 1-{MAX_LIMIT}."},
    )
    cursor = ma.fields.String(
        load_default=None,
        metadata={"description": "Opaque `next_cursor` of the previous page; absent for page 1."},
    )


def page_schema(item_schema: type[ma.Schema], name: str) -> type[ma.Schema]:
    """A response schema `{items: [...], next_cursor}` named after its items."""
    return type(
        name,
        (Planned, ma.Schema),
        {
            "items": ma.fields.List(ma.fields.Nested(item_schema), required=True),
            "next_cursor": ma.fields.String(
                allow_none=True,
                metadata={"description": "Pass as `cursor` for the next page; null on the last."},
            ),
        },
    )


def _encode(values: Sequence[Any]) -> str:
    plain = [{"t": v.isoformat()} if isinstance(v, datetime) else v for v in values]
    raw = json.dumps(plain, default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_NOT_OURS = "Not a cursor this API issued."
_INT64 = 2**63


def _decode(cursor: str, keys: Sequence) -> list:
    """The key values a cursor carries, each of its key's type (a forged cursor is a 422,
    never a query the database refuses)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = untrusted.loads(base64.urlsafe_b64decode(padded.encode()), max_depth=2)
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError
        return [_typed(value, key) for value, key in zip(values, keys, strict=True)]
    except ValueError as exc:
        raise InvalidInput(errors={"cursor": [_NOT_OURS]}) from exc


def _typed(value: Any, key) -> Any:
    column_type = key.type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    try:
        kind = column_type.python_type
    except NotImplementedError:
        kind = None
    if kind is datetime:
        if not isinstance(value, dict) or set(value) != {"t"} or not isinstance(value["t"], str):
            raise ValueError
        moment = datetime.fromisoformat(value["t"])
        if moment.tzinfo is None:
            raise ValueError
        try:
            moment.astimezone(timezone.utc)  # what binding it will do
        except OverflowError as exc:
            raise ValueError from exc
        return moment
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise ValueError
    if kind is int and not (isinstance(value, int) and -_INT64 <= value < _INT64):
        raise ValueError
    if kind is str and not isinstance(value, str):
        raise ValueError
    if isinstance(value, float) and kind is not float:
        raise ValueError
    return value


def paginate(
    session: Session,
    stmt: Select,
    keys: Sequence,
    *,
    limit: int,
    cursor: str | None,
    descending: bool = False,
):
    """Page `stmt` on `keys` (unique together, last one the id), ascending unless told.

    Key columns hold strings, integers or datetimes (never NULL) so cursors round-trip.
    """
    if cursor:
        stmt = stmt.where(_beyond(keys, _decode(cursor, keys), descending))
    rows = list(session.scalars(stmt.order_by(*_order(keys, descending)).limit(limit + 1)))
    return _page(rows, keys, limit)


class KeptPage:
    """A keyset page like `paginate`, its statement built once per variant and kept
    (statements.Prebuilt.orm): for a list that every request builds the same way but
    for its values, such as a phone's first page of quick replies, where building the
    statement and its cache key cost as much as running it.

    `base(variant)` gives the unordered select, every value that changes per request a
    bindparam (the actor's ids: policy.Actor.parametric); `page()` binds them."""

    def __init__(self, base: Callable[[Any], Select], keys: Sequence, *, descending=False):
        self.keys, self.descending = keys, descending
        self._kept = Prebuilt(
            lambda dialect, variant: self._statement(base(variant[0]), variant[1])
        )

    def _statement(self, stmt: Select, after: bool) -> Select:
        if after:
            bound = [bindparam(f"after_{i}", type_=key.type) for i, key in enumerate(self.keys)]
            stmt = stmt.where(_beyond(self.keys, bound, self.descending))
        page_size = bindparam("page_size", type_=Integer())
        return stmt.order_by(*_order(self.keys, self.descending)).limit(page_size)

    def page(self, session: Session, params: dict, *, variant, limit: int, cursor: str | None):
        values = {**params, "page_size": limit + 1}
        if cursor:
            after = _decode(cursor, self.keys)
            values.update({f"after_{i}": value for i, value in enumerate(after)})
        rows = list(self._kept.orm(session, values, (variant, bool(cursor))).scalars())
        return _page(rows, self.keys, limit)


def _beyond(keys: Sequence, after: Sequence, descending: bool):
    """(k1, k2, ...) > (v1, v2, ...) spelt out: row-value comparison differs by database."""
    clauses = []
    for i, key in enumerate(keys):
        equal_prefix = [keys[j] == after[j] for j in range(i)]
        beyond = key < after[i] if descending else key > after[i]
        clauses.append(and_(*equal_prefix, beyond))
    return or_(*clauses)


def _order(keys: Sequence, descending: bool) -> list:
    return [key.desc() for key in keys] if descending else list(keys)


def _page(rows: list, keys: Sequence, limit: int) -> dict:
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _encode([getattr(last, key.key) for key in keys])
    return {"items": rows, "next_cursor": next_cursor}


def paginate_branches(
    session: Session, model, stmt: Select, branches: Sequence, *, limit: int, cursor: str | None
):
    """Keyset page by id over the rows of `stmt` that match any of `branches` (the sides
    of an OR, e.g. `policy.visible_branches`).

    For an OR the planner cannot serve in id order: each branch takes its own index for
    its first `limit + 1` ids, and the merged, sorted ids make the page.
    """
    after = _decode(cursor, [model.id])[0] if cursor else None
    page = _branches_statement(model, stmt, branches, after=after, size=limit + 1)
    return _page(list(session.scalars(page)), [model.id], limit)


def _branches_statement(
    model, stmt: Select, branches: Sequence, *, after, size, columns: Sequence = ()
) -> Select:
    """paginate_branches' one statement: the branches' first ids merged (UNION drops an
    id two branches share), and the rows (or `columns`) of the first `size` of them. The
    `after` id (None: page 1) and `size` are values, or bindparams of a kept statement."""
    parts = []
    for condition in branches:
        branch = stmt.where(condition).with_only_columns(model.id)
        if after is not None:
            branch = branch.where(model.id > after)
        parts.append(select(branch.order_by(model.id).limit(size).subquery().c.id))
    merged = union(*parts).subquery()
    first = select(merged.c.id).order_by(merged.c.id).limit(size)
    return select(*(columns or [model])).where(model.id.in_(first)).order_by(model.id)


class KeptIdPage:
    """paginate_branches' page (one branch: a plain keyset page by id), its statement
    built once per variant and kept like KeptPage's, its rows read as records
    (statements.Rows.records): `build(variant)` gives the filtered select, its branches
    and the columns to read."""

    def __init__(self, model, build: Callable[[Any], tuple[Select, Sequence, Sequence]]):
        self.model, self._build = model, build
        self._kept = Prebuilt(lambda _dialect, kept: self._statement(*kept), reads=True)

    def _statement(self, variant, after: bool) -> Select:
        stmt, branches, columns = self._build(variant)
        after_id = bindparam("after", type_=self.model.id.type) if after else None
        size = bindparam("page_size", type_=Integer())
        if len(branches) > 1:
            return _branches_statement(
                self.model, stmt, branches, after=after_id, size=size, columns=columns
            )
        page = stmt.where(*branches).with_only_columns(*columns)
        if after_id is not None:
            page = page.where(self.model.id > after_id)
        return page.order_by(self.model.id).limit(size)

    def page(self, session: Session, params: dict, *, variant, limit: int, cursor: str | None):
        values = {**params, "page_size": limit + 1}
        if cursor:
            values["after"] = _decode(cursor, [self.model.id])[0]
        rows = self._kept.execute(session, values, (variant, bool(cursor))).records()
        return _page(rows, [self.model.id], limit)
