"""Noting changes during a unit of work; stamping.py writes them at commit."""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import ColumnElement, CompoundSelect, Select, func, select
from sqlalchemy.orm import Session

from guideapp.changelog.models import ChangeLogEntry
from guideapp.changelog.scopes import REGION, STAFF, STORE, TENANT, scope_column
from guideapp.db import greatest

# session.info keys. Notes are a journal (appended, never rewritten) so that a rolled-back
# SAVEPOINT forgets its own notes by truncation, in O(1) (stamping.py).
NOTES = "changelog_notes"  # [(tenant_id, table, record_id, scope, deleted)]
SELECTS = "changelog_selects"  # [(tenant_id, table, select of (record_id, scope), deleted)]


def log_change(
    session: Session,
    *,
    tenant_id: str,
    table: str,
    record_id: str,
    scopes: Iterable[str],
    deleted: bool = False,
) -> None:
    """Note that a record changed; list both old and new scopes when it moves.

    Pull decides from the record's current state whether each scope still holds it,
    so a scope that lost the record gets it in `deleted`.
    """
    session.info.setdefault(NOTES, []).extend(
        (tenant_id, table, record_id, scope, deleted) for scope in scopes
    )


def log_changes(
    session: Session,
    *,
    tenant_id: str,
    table: str,
    rows: Iterable[tuple[str, str]],
    deleted: bool = False,
) -> None:
    """Bulk form for set-based jobs: rows of (record_id, scope)."""
    session.info.setdefault(NOTES, []).extend(
        (tenant_id, table, record_id, scope, deleted) for record_id, scope in rows
    )


def log_changes_from_select(
    session: Session,
    *,
    tenant_id: str,
    table: str,
    rows: Select | CompoundSelect,
    deleted: bool = False,
) -> None:
    """Set-based form for fan-outs: `rows` selects (record_id, scope) pairs.

    It runs at commit, after the counter bump, as one INSERT ... SELECT.
    """
    session.info.setdefault(SELECTS, []).append((tenant_id, table, rows, deleted))


def newest_change_seq(tenant_id, staff_id, store_id, region_id) -> ColumnElement[int]:
    """The newest sequence in the scopes a staff member's phone follows (tenant, own,
    store, region; 0 when none), over columns or literals: one backward step of
    ix_change_log_scope_seq per scope. A NULL store or region matches nothing."""

    def newest(prefix: str, owner_id):
        return func.coalesce(
            select(func.max(ChangeLogEntry.seq))
            .where(
                ChangeLogEntry.tenant_id == tenant_id,
                ChangeLogEntry.scope == scope_column(prefix, owner_id),
            )
            .scalar_subquery(),
            0,
        )

    return greatest(
        newest(TENANT, tenant_id),
        newest(STAFF, staff_id),
        newest(STORE, store_id),
        newest(REGION, region_id),
    )
