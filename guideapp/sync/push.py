"""Push: a phone's queued changes, applied atomically through the same services as REST.

Conflicts (a pushed record changed on the server after `last_pulled_at`) reject the
whole push with 409. Where the server must win (task cancelled or reassigned, member no
longer the guide's), the push is accepted, the attempt is kept in sync_rejections and the
record is touched so the next pull corrects the phone. Records outside the guide's scope
or refused by a rule come back in `experimentalRejectedIds` with a reason.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.policy.actor import Actor
from guideapp.errors import Conflict, DomainError, InvalidInput, NotFound
from guideapp.sync import appliers
from guideapp.changelog import ChangeLogEntry
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
    "tag_groups",
    "tags",
    "orders",
)


class SyncConflict(Conflict):
    default_message = "Some records changed on the server since your last pull: pull, then push."


def push(session: Session, *, actor: Actor, last_pulled_at: int, changes: dict) -> dict:
    require_phone_user(actor)
    _check_shape(changes)
    counter = cursor_of(session, actor.tenant_id)
    if last_pulled_at < 1 or last_pulled_at > counter.value:
        raise InvalidInput(errors={"last_pulled_at": ["Not a cursor this server issued."]})
    server_wins = appliers.server_wins(session, actor, changes, last_pulled_at)
    conflicts = _conflicts(session, actor, changes, last_pulled_at, skip=server_wins)
    # A record that changed and is no longer on this phone's side of the scope is not a
    # conflict a pull could resolve (the pull deletes it): keep the attempt instead.
    for table_name, ids in list(conflicts.items()):
        gone = _out_of_scope(session, actor, table_name, ids)
        for record_id in gone:
            server_wins[(table_name, record_id)] = "No longer yours on the server; kept."
        conflicts[table_name] = [i for i in ids if i not in gone]
    conflicts = {t: ids for t, ids in conflicts.items() if ids}
    if conflicts:
        raise SyncConflict(errors=conflicts)
    # Fast path: the whole batch in one savepoint; only if a record is refused is it
    # replayed record by record (a savepoint each) so that just the refused ones drop out.
    batch = session.begin_nested()
    try:
        appliers.prepare(session, actor, changes)
        rejected = _apply_all(session, actor, changes, server_wins, one_by_one=False)
        batch.commit()
    except DomainError:
        batch.rollback()
        appliers.finish(session)
        rejected = _apply_all(session, actor, changes, server_wins, one_by_one=True)
    finally:
        appliers.finish(session)
    if not rejected:
        return {}
    return {
        "experimentalRejectedIds": {t: sorted(ids) for t, ids in rejected.items()},
        "rejected": rejected,
    }


def _apply_all(session, actor, changes, server_wins, *, one_by_one: bool) -> dict:
    rejected: dict[str, dict[str, str]] = {}
    for table_name in sorted(changes, key=_order):
        for operation in OPERATIONS:
            for record in changes[table_name].get(operation) or []:
                record_id = record if operation == "deleted" else record["id"]
                if (table_name, record_id) in server_wins:
                    _keep_attempt(
                        session,
                        actor,
                        table_name,
                        record_id,
                        operation,
                        record,
                        server_wins[(table_name, record_id)],
                        server_won=True,
                    )
                    continue
                if not one_by_one:
                    appliers.apply(session, actor, table_name, operation, record)
                    continue
                reason = _apply_one(session, actor, table_name, operation, record)
                if reason:
                    rejected.setdefault(table_name, {})[record_id] = reason
                    _keep_attempt(
                        session,
                        actor,
                        table_name,
                        record_id,
                        operation,
                        record,
                        reason,
                        server_won=False,
                    )
    return rejected


def _apply_one(session, actor, table_name, operation, record) -> str | None:
    """Apply one record in a savepoint; a rule's refusal undoes just this record."""
    savepoint = session.begin_nested()
    try:
        appliers.apply(session, actor, table_name, operation, record)
    except NotFound:
        savepoint.rollback()
        return "Not in your scope (another store's, another guide's, or unknown)."
    except DomainError as error:
        savepoint.rollback()
        detail = "; ".join(f"{k}: {v}" for k, v in (error.errors or {}).items())
        return f"{error.message} {detail}".strip()[:300]
    savepoint.commit()
    return None


def _conflicts(session, actor, changes, last_pulled_at: int, skip) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for table_name, ops in changes.items():
        ids = [r["id"] for r in (ops.get("updated") or []) + (ops.get("created") or [])]
        ids += list(ops.get("deleted") or [])
        ids = [i for i in ids if (table_name, i) not in skip]
        for i in range(0, len(ids), 900):
            rows = session.scalars(
                select(ChangeLogEntry.record_id)
                .where(
                    ChangeLogEntry.tenant_id == actor.tenant_id,
                    ChangeLogEntry.table_name == table_name,
                    ChangeLogEntry.record_id.in_(ids[i : i + 900]),
                    ChangeLogEntry.seq > last_pulled_at,
                )
                .distinct()
            ).all()
            if rows:
                found.setdefault(table_name, []).extend(rows)
    return {t: sorted(set(ids)) for t, ids in found.items()}


def _out_of_scope(session, actor, table_name: str, ids: list[str]) -> set[str]:
    table = BY_NAME[table_name]
    present = set(
        session.scalars(
            select(table.model.id).where(table.model.id.in_(ids), table.in_scope(actor))
        )
    )
    return set(ids) - present


def _keep_attempt(
    session, actor, table_name, record_id, operation, record, reason, *, server_won: bool
) -> None:
    payload = record if isinstance(record, dict) else {"id": record}
    appliers.touch(session, actor, table_name, record_id)
    if session.scalar(
        select(SyncRejection.id).where(  # a re-sent attempt is kept once
            SyncRejection.staff_id == actor.staff_id,
            SyncRejection.table_name == table_name,
            SyncRejection.record_id == str(record_id)[:140],
            SyncRejection.operation == operation,
            SyncRejection.reason == reason[:300],
        )
    ):
        return
    session.add(
        SyncRejection(
            tenant_id=actor.tenant_id,
            staff_id=actor.staff_id,
            table_name=table_name,
            record_id=str(record_id)[:140],
            operation=operation,
            reason=reason[:300],
            server_won=server_won,
            payload={k: v for k, v in payload.items() if k not in ("_status", "_changed")},
        )
    )


def _order(table_name: str) -> int:
    return APPLY_ORDER.index(table_name) if table_name in APPLY_ORDER else len(APPLY_ORDER)


def _check_shape(changes) -> None:
    if not isinstance(changes, dict):
        raise InvalidInput(errors={"changes": ["An object of tables."]})
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
        if not isinstance(deleted, list) or not all(isinstance(i, str) for i in deleted):
            errors[table_name] = ["deleted: a list of string ids."]
    if errors:
        raise InvalidInput(
            "The changes are not in WatermelonDB's shape.", errors={"changes": errors}
        )
