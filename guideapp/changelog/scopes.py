"""Scope strings: which phones follow a change-log row. Spelled here and nowhere else.

A phone follows its tenant, region, store and own scope (`t:<id>`, `r:<id>`, `s:<id>`,
`g:<id>`); a record is logged in every scope that holds it, old and new when it moves.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, String, literal

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


def scope_column(prefix: str, owner_id) -> ColumnElement[str]:
    """The scope string in SQL, for set-based logging: `prefix || owner_id`."""
    return literal(prefix, String) + owner_id
