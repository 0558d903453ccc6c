"""Write-side of the change log: note changes during a unit of work, stamp them at commit."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import ColumnElement, Select, String, func, insert, literal, select, update
from sqlalchemy.orm import Session

from guideapp.db import greatest
from guideapp.sync.models import ChangeLogEntry, SyncCounter

PENDING = "pending_changes"


def tenant_scope(tenant_id: str) -> str:
    return f"t:{tenant_id}"


def region_scope(region_id: str) -> str:
    return f"r:{region_id}"


def store_scope(store_id: str) -> str:
    return f"s:{store_id}"


def staff_scope(staff_id: str) -> str:
    return f"g:{staff_id}"


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
    pending: dict = session.info.setdefault(PENDING, {})
    for scope in scopes:
        key = (tenant_id, table, record_id, scope)
        pending[key] = pending.get(key, False) or deleted


def log_changes(session: Session, *, tenant_id: str, table: str, rows: Iterable[tuple[str, str]]):
    """Bulk form for set-based jobs: rows of (record_id, scope)."""
    pending: dict = session.info.setdefault(PENDING, {})
    for record_id, scope in rows:
        pending.setdefault((tenant_id, table, record_id, scope), False)


PENDING_SELECTS = "pending_change_selects"


def newest_change_seq(tenant_id, staff_id, store_id, region_id) -> ColumnElement[int]:
    """The newest sequence in the scopes a staff member's phone follows (tenant, own,
    store, region; 0 when none), over columns or literals: one backward step of
    ix_change_log_scope_seq per scope. A NULL store or region matches nothing."""

    def newest(prefix: str, owner_id):
        return func.coalesce(select(func.max(ChangeLogEntry.seq)).where(
            ChangeLogEntry.tenant_id == tenant_id,
            ChangeLogEntry.scope == literal(prefix, String) + owner_id).scalar_subquery(), 0)

    return greatest(newest("t:", tenant_id), newest("g:", staff_id), newest("s:", store_id),
                    newest("r:", region_id))


def log_changes_from_select(session: Session, *, tenant_id: str, table: str, rows: Select,
                            deleted: bool = False) -> None:
    """Set-based form for fan-outs: `rows` selects (record_id, scope) pairs.

    It runs at commit, after the counter bump, as one INSERT ... SELECT.
    """
    session.info.setdefault(PENDING_SELECTS, []).append((tenant_id, table, rows, deleted))


def snapshot_pending(session: Session) -> tuple[dict, list]:
    """What is noted so far, to restore if a savepoint holding later notes rolls back."""
    return dict(session.info.get(PENDING, {})), list(session.info.get(PENDING_SELECTS, []))


def restore_pending(session: Session, snapshot: tuple[dict, list]) -> None:
    session.info[PENDING], session.info[PENDING_SELECTS] = dict(snapshot[0]), list(snapshot[1])


def stamp_pending_changes(session: Session) -> None:
    """Bump each touched tenant's counter (row-locked until commit) and write the log rows."""
    pending: dict = session.info.pop(PENDING, None) or {}
    selects: list = session.info.pop(PENDING_SELECTS, None) or []
    if not pending and not selects:
        return
    session.flush()
    tenants = {key[0] for key in pending} | {entry[0] for entry in selects}
    for tenant_id in sorted(tenants):  # fixed order: no lock cycles
        seq = session.execute(
            update(SyncCounter)
            .where(SyncCounter.tenant_id == tenant_id)
            .values(value=SyncCounter.value + 1)
            .returning(SyncCounter.value)
        ).scalar_one_or_none()
        if seq is None:
            raise RuntimeError(f"tenant {tenant_id} has no sync counter row")
        rows = [
            {
                "tenant_id": tenant_id, "seq": seq, "table_name": table,
                "record_id": record_id, "scope": scope, "deleted": deleted,
            }
            for (tid, table, record_id, scope), deleted in pending.items()
            if tid == tenant_id
        ]
        if rows:
            session.execute(insert(ChangeLogEntry), rows)
        for tid, table, select_rows, deleted in selects:
            if tid == tenant_id:
                _insert_from_select(session, tenant_id, seq, table, select_rows, deleted)


def _insert_from_select(session, tenant_id, seq, table, select_rows: Select, deleted) -> None:
    sub = select_rows.subquery()
    record_id, scope = list(sub.c)[:2]
    source = select(literal(tenant_id), literal(seq), scope, literal(table), record_id,
                    literal(deleted))
    session.execute(insert(ChangeLogEntry).from_select(
        ["tenant_id", "seq", "scope", "table_name", "record_id", "deleted"], source))
