"""Dumping a response the way marshmallow does, without its per-field machinery.

marshmallow asks each field of each item to fetch its value through the schema's accessor,
check for a default and format it: about 4 µs a field, so a page of 50 members (19 fields
each) spent 2 ms there, more than its SQL. A schema's plan, made once per schema instance,
fetches each value as marshmallow's accessor would (a dict's key, else the attribute) and
formats it: inline for a str, an int or a bool, which the field would return unchanged;
nested schemas by their own plans; anything else by the field's own `_serialize`. A field
that fetches its own value (Method, Function, an overridden `get_value`) and a schema with
dump hooks or its own accessor are dumped by marshmallow itself. So the output is the same.

`check_against_marshmallow(True)` (the test suite) dumps every response both ways and
raises on any difference.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from typing import Any, Callable, cast

import marshmallow as ma
from marshmallow import fields as mf
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import get_value

_MISSING = ma.missing
_TEXT = {mf.String, mf.Url, mf.Email}  # String._serialize: str(value), a str as is
_PLAN = "_guideapp_dump_plan"
_reference: ContextVar[bool] = ContextVar("marshmallow_reference_dump", default=False)
_checking = False


def check_against_marshmallow(on: bool) -> None:
    """Every dump also runs through marshmallow and must come out the same (tests)."""
    global _checking
    _checking = on


class Planned:
    """A schema mixin: `dump` by the schema's plan (extensions.Schema, pages of items)."""

    def dump(self, obj: Any, *, many: bool | None = None):
        return dump(cast(ma.Schema, self), obj, many=many)


def dump(schema: ma.Schema, obj: Any, *, many: bool | None = None):
    """`schema.dump(obj, many=many)`, by the schema's plan where it has one."""
    plan = _plan_of(schema) if not _reference.get() else None
    if plan is None:
        return ma.Schema.dump(schema, obj, many=many)
    many = schema.many if many is None else bool(many)
    result = [plan(each) for each in obj] if many and obj is not None else plan(obj)
    if _checking:
        token = _reference.set(True)
        try:
            expected = ma.Schema.dump(schema, obj, many=many)
        finally:
            _reference.reset(token)
        if result != expected:
            raise AssertionError(
                f"{type(schema).__name__}: the plan dumped {result!r}, marshmallow {expected!r}"
            )
    return result


def _plan_of(schema: ma.Schema) -> Callable[[Any], dict] | None:
    if _PLAN not in schema.__dict__:
        schema.__dict__[_PLAN] = _make_plan(schema)
    return schema.__dict__[_PLAN]


def _make_plan(schema: ma.Schema) -> Callable[[Any], dict] | None:
    if (
        schema._hooks[PRE_DUMP]
        or schema._hooks[POST_DUMP]
        or type(schema).get_attribute is not ma.Schema.get_attribute
        or type(schema)._serialize is not ma.Schema._serialize
    ):
        return None
    steps = [
        (name if field.data_key is None else field.data_key, _step(schema, name, field))
        for name, field in schema.dump_fields.items()
    ]
    dict_class = schema.dict_class

    def plan(obj) -> dict:
        out = dict_class()
        for key, step in steps:
            value = step(obj)
            if value is not _MISSING:
                out[key] = value
        return out

    return plan


def _step(schema: ma.Schema, name: str, field: mf.Field) -> Callable[[Any], Any]:
    """One field: fetch its value, apply its default, format it (Field.serialize)."""
    if not field._CHECK_ATTRIBUTE or type(field).get_value is not mf.Field.get_value:
        accessor = schema.get_attribute
        return lambda obj: field.serialize(name, obj, accessor=accessor)
    key = name if field.attribute is None else field.attribute
    fetch = _fetcher(key)
    form = _formatter(field, name)
    default = field.dump_default

    def step(obj):
        value = fetch(obj)
        if value is _MISSING:
            value = default() if callable(default) else default
            if value is _MISSING:
                return value
        return form(value, obj)

    return step


def _fetcher(key: str) -> Callable[[Any], Any]:
    """marshmallow's accessor (utils.get_value): a dict's key, else the attribute."""
    if "." in key:
        return lambda obj: get_value(obj, key, _MISSING)

    def fetch(obj):
        if type(obj) is dict:
            try:
                return obj[key]
            except KeyError:
                return getattr(obj, key, _MISSING)
        if not hasattr(obj, "__getitem__") or isinstance(obj, tuple):
            # a tuple's [key] fails for a name: marshmallow then reads the attribute
            # (a named tuple's field: statements.Rows.records)
            return getattr(obj, key, _MISSING)
        return get_value(obj, key, _MISSING)

    return fetch


def _formatter(field: mf.Field, name: str) -> Callable[[Any, Any], Any]:
    kind = type(field)
    own = field._serialize
    if kind in _TEXT:
        return lambda value, obj: (
            value if value is None or type(value) is str else own(value, name, obj)
        )
    if kind is mf.Integer and not cast(mf.Integer, field).as_string:
        return lambda value, obj: (
            value if value is None or type(value) is int else own(value, name, obj)
        )
    if kind is mf.Boolean and _plain_truth(cast(mf.Boolean, field)):
        return lambda value, obj: (
            value if value is None or type(value) is bool else own(value, name, obj)
        )
    if kind is mf.Raw:
        return lambda value, obj: value
    if kind is mf.DateTime and _iso(cast(mf.DateTime, field)):
        return lambda value, obj: (
            value.isoformat() if type(value) is datetime else own(value, name, obj)
        )
    if kind is mf.Nested:
        return _nested(cast(mf.Nested, field))
    if kind is mf.List and type(cast(mf.List, field).inner) is mf.Nested:
        inner = _nested(cast(mf.Nested, cast(mf.List, field).inner))
        return lambda value, obj: None if value is None else [inner(each, obj) for each in value]
    return lambda value, obj: own(value, name, obj)


def _iso(field: mf.DateTime) -> bool:
    """The field writes ISO 8601: a datetime then dumps as its own isoformat()."""
    return (field.format or field.DEFAULT_FORMAT) in ("iso", "iso8601")


def _plain_truth(field: mf.Boolean) -> bool:
    """The field's own truthy and falsy sets: a bool then dumps as itself."""
    return field.truthy is mf.Boolean.truthy and field.falsy is mf.Boolean.falsy


def _nested(field: mf.Nested) -> Callable[[Any, Any], Any]:
    """Nested._serialize: None stays None; the nested schema dumps the rest."""

    def nested(value, obj):
        if value is None:
            return None
        schema = field.schema
        return dump(schema, value, many=schema.many or field.many)

    return nested
