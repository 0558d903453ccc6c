"""Push: a phone's queued changes, applied atomically through the same services as REST.

Conflicts (a pushed record changed on the server after `last_pulled_at`) reject the
whole push with 409. Where the server must win (task cancelled or reassigned, member no
longer the guide's), the push is accepted, the attempt is kept in sync_rejections and the
record is touched so the next pull corrects the phone. Records outside the guide's scope
or refused by a rule come back in `experimentalRejectedIds` with a reason.

The flow, with one PushContext (sync/context.py) passed down: look up in bulk what the
pushed ids name (a few queries per push, not per record); find conflicts and server-wins;
plan every record (validated with its REST schema, checked against the bulk look-ups, and
refused, skipped or turned into a service call); replay only the planned calls, a
savepoint per CHECKPOINT records; keep the attempts not applied, once each.
"""

from __future__ import annotations


import json
from typing import NamedTuple, cast

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from guideapp.policy.actor import Actor
from guideapp.changelog import ChangeLogEntry
from guideapp.db import any_of
from guideapp.errors import Conflict, DomainError, InvalidInput, NotFound
from guideapp.sync import appliers
from guideapp.sync.context import OUT_OF_SCOPE, PushContext
from guideapp.sync.models import SyncRejection
from guideapp.sync.service import cursor_of, require_phone_user
from guideapp.sync.tables import BY_NAME

OPERATIONS = ("created", "updated", "deleted")
# Parents first: a note may name a member created offline in the same push.
APPLY_ORDER = (
    "members",
    "member_tags",
    "member_notes",
    "tasks",
    "task_targets",
    "shares",
    "coupons",
    "tag_groups",
    "tags",
    "orders",
)
# Records (created + updated + deleted, all tables) one push may carry; beyond: 413.
MAX_PUSH_RECORDS = 5000
# Records applied per savepoint in the replay: a refusal no bulk check foresaw undoes and
# re-applies at most this many, never the whole push and never one savepoint per record.
CHECKPOINT = 1000


class SyncConflict(Conflict):
    default_message = "Some records changed on the server since your last pull: pull, then push."


class PushTooLarge(DomainError):
    status = 413
    default_message = (
        f"A push carries at most {MAX_PUSH_RECORDS} records: split the changes into several "
        "pushes (parents first), each with its own Idempotency-Key."
    )


class Attempt(NamedTuple):
    """A pushed record the server did not apply: kept in sync_rejections."""

    table: str
    record_id: str
    operation: str
    record: dict | str
    reason: str
    server_won: bool


def push(session: Session, *, actor: Actor, last_pulled_at: int, changes: dict) -> dict:
    require_phone_user(actor)
    records = _check_shape(changes)
    counter = cursor_of(session, actor.tenant_id)
    if last_pulled_at < 1 or last_pulled_at > counter.value:
        raise InvalidInput(errors={"last_pulled_at": ["Not a cursor this server issued."]})
    ctx = PushContext.load(session, actor=actor, last_pulled_at=last_pulled_at, changes=changes)
    ctx.server_wins = appliers.server_wins(session, actor, ctx.known_changes(), last_pulled_at)
    conflicts = _conflicts(ctx)
    # A record that changed and is no longer on this phone's side of the scope is not a
    # conflict a pull could resolve (the pull deletes it): keep the attempt instead.
    for table_name, ids in list(conflicts.items()):
        gone = _out_of_scope(session, actor, table_name, ids)
        for record_id in gone:
            ctx.server_wins[(table_name, record_id)] = "No longer yours on the server; kept."
        conflicts[table_name] = [i for i in ids if i not in gone]
    conflicts = {t: ids for t, ids in conflicts.items() if ids}
    if conflicts:
        raise SyncConflict(errors=conflicts)
    attempts: list[Attempt] = []
    planned: list[tuple[tuple[str, str, str, dict | str], appliers.Step]] = []
    for table_name, operation, record in records:
        record_id = cast(str, record) if operation == "deleted" else cast(dict, record)["id"]
        key = (table_name, record_id, operation, record)
        if (table_name, record_id) in ctx.server_wins:
            attempts.append(Attempt(*key, ctx.server_wins[(table_name, record_id)], True))
            continue
        try:
            step = appliers.plan(ctx, table_name, operation, record)
        except DomainError as error:
            attempts.append(Attempt(*key, _reason(error), False))
            continue
        if step is not None:
            planned.append((key, step))
    for index, reason in _replay(session, [step for _, step in planned]).items():
        attempts.append(Attempt(*planned[index][0], reason, False))
    _keep_attempts(session, actor, attempts)
    rejected: dict[str, dict[str, str]] = {}
    for attempt in attempts:
        if not attempt.server_won:
            rejected.setdefault(attempt.table, {})[attempt.record_id] = attempt.reason
    if not rejected:
        return {}
    return {
        "experimentalRejectedIds": {t: sorted(ids) for t, ids in rejected.items()},
        "rejected": rejected,
    }


def _replay(session: Session, steps: list) -> dict[int, str]:
    """Run the planned steps, CHECKPOINT per savepoint, neighbouring Batched steps of one
    kind as one call. A step a rule refuses rolls back its savepoint, which runs again
    without it (a refused batch runs again step by step, to find the refused ones).
    Returns {step index: reason}."""
    refused: dict[int, str] = {}
    alone: set[int] = set()
    start = 0
    while start < len(steps):
        end = min(start + CHECKPOINT, len(steps))
        savepoint = session.begin_nested()
        running: list[int] = []
        try:
            i = start
            while i < end:
                key = getattr(steps[i], "key", None)
                j = i + 1
                if key is not None and i not in alone:
                    while j < end and getattr(steps[j], "key", None) == key and j not in alone:
                        j += 1
                running = [k for k in range(i, j) if k not in refused]
                if len(running) > 1:
                    steps[i].run([steps[k].args for k in running])
                elif running:
                    steps[running[0]]()
                i = j
            savepoint.commit()
            start = end
        except DomainError as error:
            savepoint.rollback()
            if len(running) == 1:
                refused[running[0]] = _reason(error)
            else:
                alone.update(running)
    return refused


def _reason(error: DomainError) -> str:
    if isinstance(error, NotFound):  # unknown and not yours read the same (ids are guessable)
        return OUT_OF_SCOPE
    detail = "; ".join(f"{k}: {v}" for k, v in (error.errors or {}).items())
    return f"{error.message} {detail}".strip()[:300]


def _conflicts(ctx: PushContext) -> dict[str, list[str]]:
    """Pushed records changed, in the scopes this phone follows, since its pull."""
    found: dict[str, list[str]] = {}
    for table_name in ctx.changes:
        scopes = BY_NAME[table_name].scopes(ctx.actor)
        ids = {i for i in ctx.ids(table_name) if (table_name, i) not in ctx.server_wins}
        if not scopes or not ids:
            continue
        rows = ctx.session.scalars(
            select(ChangeLogEntry.record_id)
            .where(
                ChangeLogEntry.tenant_id == ctx.actor.tenant_id,
                ChangeLogEntry.table_name == table_name,
                any_of(ctx.session, ChangeLogEntry.record_id, ids),
                ChangeLogEntry.scope.in_(scopes),
                ChangeLogEntry.seq > ctx.last_pulled_at,
            )
            .distinct()
        ).all()
        if rows:
            found[table_name] = sorted(rows)
    return found


def _out_of_scope(session, actor, table_name: str, ids: list[str]) -> set[str]:
    table = BY_NAME[table_name]
    present = session.scalars(
        select(table.model.id).where(any_of(session, table.model.id, ids), table.in_scope(actor))
    )
    return set(ids) - set(present)


def _keep_attempts(session: Session, actor: Actor, attempts: list[Attempt]) -> None:
    """Keep each attempt once (a record re-sent unchanged, e.g. by the rescue after its
    refusal, is the same attempt), and touch it so the next pull corrects the phone."""
    if not attempts:
        return
    for attempt in attempts:
        appliers.touch(session, actor, attempt.table, attempt.record_id)
    ids = {str(a.record_id) for a in attempts}
    kept = {
        (row.table_name, row.record_id, row.operation, _canonical(row.payload))
        for row in session.execute(
            select(
                SyncRejection.table_name,
                SyncRejection.record_id,
                SyncRejection.operation,
                SyncRejection.payload,
            ).where(
                SyncRejection.staff_id == actor.staff_id,
                any_of(session, SyncRejection.record_id, ids),
            )
        )
    }
    rows = []
    for attempt in attempts:
        payload = _payload(attempt.record)
        key = (attempt.table, str(attempt.record_id), attempt.operation, _canonical(payload))
        if key in kept:
            continue
        kept.add(key)
        rows.append(
            {
                "tenant_id": actor.tenant_id,
                "staff_id": actor.staff_id,
                "table_name": attempt.table,
                "record_id": str(attempt.record_id),
                "operation": attempt.operation,
                "reason": attempt.reason[:300],
                "server_won": attempt.server_won,
                "payload": payload,
            }
        )
    if rows:
        session.execute(insert(SyncRejection), rows)  # one executemany, not a round trip each


def _payload(record) -> dict:
    payload = record if isinstance(record, dict) else {"id": record}
    return {k: v for k, v in payload.items() if k not in ("_status", "_changed")}


def _canonical(payload) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)


def _order(table_name: str) -> int:
    return APPLY_ORDER.index(table_name) if table_name in APPLY_ORDER else len(APPLY_ORDER)


def _check_shape(changes) -> list[tuple[str, str, dict | str]]:
    """(table, operation, record) in apply order, or a 4xx naming what is wrong."""
    if not isinstance(changes, dict):
        raise InvalidInput(errors={"changes": ["An object of tables."]})
    count = sum(
        len(ops[op])
        for ops in changes.values()
        if isinstance(ops, dict)
        for op in OPERATIONS
        if isinstance(ops.get(op), list)
    )
    if count > MAX_PUSH_RECORDS:
        raise PushTooLarge(errors={"changes": [f"{count} records; at most {MAX_PUSH_RECORDS}."]})
    errors = {}
    for table_name, ops in changes.items():
        if table_name not in BY_NAME:
            errors[table_name] = [f"Unknown table; known: {', '.join(sorted(BY_NAME))}."]
            continue
        if not isinstance(ops, dict) or set(ops) - set(OPERATIONS):
            errors[table_name] = ["Give {created: [...], updated: [...], deleted: [...]}."]
            continue
        for operation in ("created", "updated"):
            records = ops.get(operation) or []
            if not isinstance(records, list) or not all(
                isinstance(r, dict) and isinstance(r.get("id"), str) and 0 < len(r["id"]) <= 140
                for r in records
            ):
                errors[table_name] = [f"{operation}: records with a string id (1-140 chars)."]
        deleted = ops.get("deleted") or []
        if not isinstance(deleted, list) or not all(
            isinstance(i, str) and 0 < len(i) <= 140 for i in deleted
        ):
            errors[table_name] = ["deleted: a list of string ids (1-140 chars)."]
        if table_name not in errors:
            ids = [r["id"] for op in ("created", "updated") for r in ops.get(op) or []]
            ids += deleted
            if len(set(ids)) < len(ids):
                errors[table_name] = ["Each record id at most once per table."]
    if errors:
        raise InvalidInput(
            "The changes are not in WatermelonDB's shape.", errors={"changes": errors}
        )
    return [
        (table_name, operation, record)
        for table_name in sorted(changes, key=_order)
        for operation in OPERATIONS
        for record in changes[table_name].get(operation) or []
    ]
