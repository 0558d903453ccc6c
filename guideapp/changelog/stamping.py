"""Every commit stamps the notes of its unit of work; a rolled-back SAVEPOINT forgets its own.

Registered on SQLAlchemy's Session class when this package is imported (any code that can
note a change has imported it), so a bare `session.commit()` stamps too.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from sqlalchemy import (
    String,
    bindparam,
    event,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session, SessionTransaction

from guideapp.changelog.log import NOTES, SELECTS
from guideapp.db import COPY_ROWS, insert_rows, unnest_columns
from guideapp.statements import Prebuilt
from guideapp.changelog.models import ChangeLogEntry, SyncCounter

MARKS = "changelog_marks"  # {savepoint: (notes, selects) lengths at its start}


@event.listens_for(Session, "before_commit")
def _stamp_on_commit(session: Session) -> None:
    # A SAVEPOINT's release commits nothing: its notes wait for the real commit.
    if not session.in_nested_transaction():
        stamp_pending_changes(session)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        # Weak keys: a released savepoint's mark goes with it (close() runs before the
        # rollback event, so the mark cannot be dropped at the transaction's end).
        marks = session.info.setdefault(MARKS, WeakKeyDictionary())
        marks[transaction] = (len(session.info.get(NOTES, ())), len(session.info.get(SELECTS, ())))


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    # What the database rolled back: the nearest SAVEPOINT or the transaction itself, also
    # when the rollback came from a flush's subtransaction (a failed INSERT inside
    # `begin_nested()`: SQLAlchemy then rolls the SAVEPOINT back there, and the SAVEPOINT's
    # own rollback sends no event of its own). As Session.rollback finds its boundary.
    rolled_back = previous_transaction
    while rolled_back.parent is not None and not rolled_back.nested:
        rolled_back = rolled_back.parent
    if not rolled_back.nested:
        session.info.pop(NOTES, None)
        session.info.pop(SELECTS, None)
        return
    mark = session.info.get(MARKS, {}).pop(rolled_back, None)
    if mark is not None:
        del session.info.setdefault(NOTES, [])[mark[0] :]
        del session.info.setdefault(SELECTS, [])[mark[1] :]


def stamp_pending_changes(session: Session) -> None:
    """Bump each touched tenant's counter (row-locked until commit) and write the log rows."""
    notes: list = session.info.pop(NOTES, None) or []
    selects: list = session.info.pop(SELECTS, None) or []
    if not notes and not selects:
        return
    merged: dict[tuple, bool] = {}
    for tenant_id, table, record_id, scope, deleted in notes:
        key = (tenant_id, table, record_id, scope)
        merged[key] = merged.get(key, False) or deleted  # a delete is never undone by a note
    session.flush()
    tenants = {key[0] for key in merged} | {entry[0] for entry in selects}
    for tenant_id in sorted(tenants):  # fixed order: no lock cycles
        rows = [
            {"table_name": table, "record_id": record_id, "scope": scope, "deleted": deleted}
            for (tid, table, record_id, scope), deleted in merged.items()
            if tid == tenant_id
        ]
        if rows and len(rows) < COPY_ROWS and session.get_bind().dialect.name == "postgresql":
            seq = _bump_and_log(session, tenant_id, rows)  # the common write: one round trip
        else:
            seq = _bump(session, tenant_id)
            if rows:  # one statement however many rows (a sync push writes ten thousand)
                insert_rows(
                    session,
                    ChangeLogEntry.__table__,
                    [{"tenant_id": tenant_id, "seq": seq, **row} for row in rows],
                )
        for tid, table, select_rows, deleted in selects:
            if tid == tenant_id:
                _insert_from_select(session, tenant_id, seq, table, select_rows, deleted)


def _bump(session: Session, tenant_id: str) -> int:
    seq = session.execute(
        update(SyncCounter)
        .where(SyncCounter.tenant_id == tenant_id)
        .values(value=SyncCounter.value + 1)
        .returning(SyncCounter.value)
    ).scalar_one_or_none()
    if seq is None:
        raise RuntimeError(f"tenant {tenant_id} has no sync counter row")
    return seq


LOGGED = ("table_name", "record_id", "scope", "deleted")


def stamp_ctes(tenant, *, prefix: str = "", when=None):
    """The stamp as two CTEs for a statement of its own (PostgreSQL): `bumped` takes the
    tenant's counter (row-locked until commit) and `logged` writes the rows bound as arrays
    named `<prefix>table_name`, `<prefix>record_id`, `<prefix>scope`, `<prefix>deleted`
    (stamp_parameters), RETURNING their seq. A hot write that carries them stamps its own
    changes in its own round trip and notes nothing for the commit (coupons/redemption.py);
    the commit order is kept, since the counter stays locked until that commit. With
    `when` (a condition on the statement's other CTEs) nothing is bumped or written unless
    it holds."""
    bumped = (
        update(SyncCounter)
        .where(SyncCounter.tenant_id == tenant, *([when] if when is not None else []))
        .values(value=SyncCounter.value + 1)
        .returning(SyncCounter.value)
        .cte("bumped")
    )
    source = unnest_columns(ChangeLogEntry.__table__, LOGGED, prefix=prefix)
    logged = (
        insert(ChangeLogEntry)
        .from_select(
            ["tenant_id", "seq", *LOGGED],
            select(tenant, bumped.c.value, *[source.c[n] for n in LOGGED])
            .select_from(bumped)
            .join(source, true()),
        )
        .returning(ChangeLogEntry.seq)
        .cte("logged")
    )
    return bumped, logged


def stamp_parameters(rows: list[dict], *, prefix: str = "") -> dict:
    """stamp_ctes' arrays for `rows` of table_name, record_id, scope and deleted."""
    return {prefix + n: [row[n] for row in rows] for n in LOGGED}


def _bump_and_log_statement(_dialect, _variant):
    """`WITH bumped AS (UPDATE sync_counters ... RETURNING value), logged AS (INSERT INTO
    change_log SELECT ... FROM bumped, unnest(...) RETURNING seq) SELECT seq FROM logged`:
    the counter's row lock and the log rows in one statement (PostgreSQL), as `_bump` then
    `insert_rows` would write them."""
    bumped, logged = stamp_ctes(bindparam("tenant", type_=String))  # (not a column's name)
    return select(logged.c.seq).add_cte(bumped, logged)


_BUMP_AND_LOG = Prebuilt(_bump_and_log_statement)


def _bump_and_log(session: Session, tenant_id: str, rows: list[dict]) -> int:
    params = {"tenant": tenant_id, **stamp_parameters(rows)}
    seq = next(iter(_BUMP_AND_LOG.execute(session, params).scalars()), None)
    if seq is None:
        raise RuntimeError(f"tenant {tenant_id} has no sync counter row")
    return seq


def _insert_from_select(session, tenant_id, seq, table, select_rows, deleted) -> None:
    sub = select_rows.subquery()
    record_id, scope = list(sub.c)[:2]
    source = select(
        literal(tenant_id), literal(seq), scope, literal(table), record_id, literal(deleted)
    )
    session.execute(
        insert(ChangeLogEntry).from_select(
            ["tenant_id", "seq", "scope", "table_name", "record_id", "deleted"], source
        )
    )
