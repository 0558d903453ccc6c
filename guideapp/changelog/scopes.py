"""Scope strings: which phones follow a change-log row. Spelled here and nowhere else.

A phone follows its tenant, region, store and own scope (`t:<id>`, `r:<id>`, `s:<id>`,
`g:<id>`); a record is logged in every scope that holds it, old and new when it moves.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, String, literal
from sqlalchemy.sql.elements import ClauseElement

TENANT, REGION, STORE, STAFF = "t:", "r:", "s:", "g:"


def tenant_scope(tenant_id: str) -> str:
    return f"{TENANT}{tenant_id}"


def region_scope(region_id: str) -> str:
    return f"{REGION}{region_id}"


def store_scope(store_id: str) -> str:
    return f"{STORE}{store_id}"


def staff_scope(staff_id: str) -> str:
    return f"{STAFF}{staff_id}"


def scopes_followed(actor) -> list[str]:
    """Every scope a staff member's phone follows (anything with the four ids: an Actor)."""
    return [
        tenant_scope(actor.tenant_id),
        region_scope(actor.region_id),
        store_scope(actor.store_id),
        staff_scope(actor.staff_id),
    ]


def scopes_followed_in_sql(actor) -> list:
    """scopes_followed for a read rule: an id bound at execution (a statement built for an
    actor's shape, policy.Actor.parametric) is spelt `prefix || :id` in SQL."""
    ids = [(TENANT, actor.tenant_id), (REGION, actor.region_id)]
    ids += [(STORE, actor.store_id), (STAFF, actor.staff_id)]
    return [
        scope_column(prefix, value) if isinstance(value, ClauseElement) else f"{prefix}{value}"
        for prefix, value in ids
    ]


def scope_column(prefix: str, owner_id) -> ColumnElement[str]:
    """The scope string in SQL, for set-based logging: `prefix || owner_id`."""
    return literal(prefix, String) + owner_id
