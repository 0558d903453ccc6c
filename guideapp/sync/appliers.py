"""Pushed records, table by table, turned into calls of the services REST uses."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.errors import InvalidInput
from guideapp.members import service as members
from guideapp.members.models import Member, MemberNote, MemberTag
from guideapp.changelog import log_change, staff_scope
from guideapp.changelog import ChangeLogEntry
from guideapp.sync.tables import BY_NAME
from guideapp.tasks import service as tasks
from guideapp.tasks.models import Task, TaskTarget

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
READ_ONLY = "Read-only on the phone."


def apply(session: Session, actor: Actor, table: str, operation: str, record) -> None:
    handler = _HANDLERS.get((table, operation))
    if handler is None:
        raise InvalidInput(f"{table}: a phone cannot {operation[:-1]} these records. {READ_ONLY}")
    handler(session, actor, record)


def server_wins(
    session: Session, actor: Actor, changes: dict, last_pulled_at: int
) -> dict[tuple[str, str], str]:
    """Pushed records whose server state must win: the attempt is kept, not applied.

    A member counts only if they left this guide after the phone's last pull; a member
    who never was theirs is out of scope, refused per record instead."""
    found = {}
    # Tasks the guide may no longer read still answer "server wins": the tenant fence only.
    task_ids = [r["id"] for r in (changes.get("tasks") or {}).get("updated") or []]
    target_ids = [r["id"] for r in (changes.get("task_targets") or {}).get("updated") or []]
    targets = policy.get_in_tenant(session, actor, TaskTarget, target_ids)
    known = policy.get_in_tenant(
        session, actor, Task, [*task_ids, *(t.task_id for t in targets.values())]
    )
    named = [("tasks", i, i) for i in task_ids]
    named += [("task_targets", t.id, t.task_id) for t in targets.values()]
    for table, record_id, task_id in named:
        reason = _task_gone(actor, known[task_id]) if task_id in known else None
        if reason:
            found[(table, record_id)] = reason
    owners = _members_named(session, actor, changes)
    for table in ("members", "member_notes", "member_tags"):
        for operation in ("created", "updated", "deleted"):
            for record in (changes.get(table) or {}).get(operation) or []:
                record_id = record if operation == "deleted" else record["id"]
                member = owners.get((table, record_id))
                if (
                    member is not None
                    and actor.is_guide
                    and member.guide_id != actor.staff_id
                    and _left_since(session, actor, member.id, last_pulled_at)
                ):
                    found[(table, record_id)] = "The member is no longer bound to you."
    return found


def _left_since(session, actor: Actor, member_id: str, last_pulled_at: int) -> bool:
    return session.scalar(
        select(
            exists().where(
                ChangeLogEntry.tenant_id == actor.tenant_id,
                ChangeLogEntry.table_name == "members",
                ChangeLogEntry.record_id == member_id,
                ChangeLogEntry.scope == staff_scope(actor.staff_id),
                ChangeLogEntry.seq > last_pulled_at,
            )
        )
    )


def touch(session: Session, actor: Actor, table: str, record_id: str) -> None:
    """Make the next pull send the server's version (or a delete) of this record."""
    if table in BY_NAME:
        log_change(
            session,
            tenant_id=actor.tenant_id,
            table=table,
            record_id=str(record_id),
            scopes=BY_NAME[table].scopes(actor),
        )


def _task_gone(actor: Actor, task: Task) -> str | None:
    if task.state == "cancelled":
        return "The manager cancelled this task."
    if actor.is_guide and task.assignee_id not in (None, actor.staff_id):
        return "The task was given to another guide."
    return None


def _members_named(session, actor, changes) -> dict[tuple[str, str], Member]:
    """(table, record id) -> the member the pushed record belongs to, in a few queries."""
    wanted: dict[tuple[str, str], str] = {}
    for table, model in (("member_notes", MemberNote), ("member_tags", MemberTag)):
        ops = changes.get(table) or {}
        records = {r["id"]: r for op in ("created", "updated") for r in ops.get(op) or []}
        ids = list(records) + list(ops.get("deleted") or [])
        stored = (
            dict(session.execute(select(model.id, model.member_id).where(model.id.in_(ids))).all())
            if ids
            else {}
        )
        for record_id in ids:
            member_id = stored.get(record_id) or (records.get(record_id) or {}).get("member_id")
            if isinstance(member_id, str):
                wanted[(table, record_id)] = member_id
    ops = changes.get("members") or {}
    for record_id in [r["id"] for op in ("created", "updated") for r in ops.get(op) or []] + list(
        ops.get("deleted") or []
    ):
        wanted[("members", record_id)] = record_id
    loaded = policy.get_in_tenant(session, actor, Member, set(wanted.values()))
    return {key: loaded[mid] for key, mid in wanted.items() if mid in loaded}


# --- members ------------------------------------------------------------------------


def _member_created(session, actor, record):
    if session.get(Member, record["id"]) is not None:  # the earlier push got through
        return _member_updated(session, actor, record)
    if not _CLIENT_ID.match(record["id"]):
        raise InvalidInput(errors={"id": ["1-32 letters, digits, '-' or '_'."]})
    members.register(
        session,
        actor=actor,
        member_id=record["id"],
        data={
            "phone": _text(record, "phone", required=True),
            "name": record.get("name") or "",
            "gender": record.get("gender") or "unknown",
            "unionid": record.get("unionid"),
            "birthday": _date(record.get("birthday")),
            "guide_id": actor.staff_id,
        },
    )


def _member_updated(session, actor, record):
    data = {k: record[k] for k in ("name", "gender") if isinstance(record.get(k), str)}
    if "birthday" in record:
        data["birthday"] = _date(record["birthday"])
    members.update_profile(session, actor=actor, member_id=record["id"], data=data)


# --- notes and tags -------------------------------------------------------------------


def prepare(session: Session, actor: Actor, changes: dict) -> None:
    """Bulk look-ups for a push: existing note ids and the members records name."""
    notes = (changes.get("member_notes") or {}).get("created") or []
    ids = [r["id"] for r in notes]
    session.info[EXISTING_NOTES] = (
        set(session.scalars(select(MemberNote.id).where(MemberNote.id.in_(ids)))) if ids else set()
    )
    member_ids = {
        r.get("member_id")
        for table in ("member_notes", "member_tags")
        for r in (changes.get(table) or {}).get("created") or []
    }
    member_ids.discard(None)
    if member_ids:
        members.prefetch_visible(session, actor=actor, member_ids=member_ids)


def finish(session: Session) -> None:
    session.info.pop(EXISTING_NOTES, None)
    session.info.pop(members.VISIBLE_CACHE, None)


EXISTING_NOTES = "push_existing_notes"


def _note_created(session, actor, record):
    existing = session.info.get(EXISTING_NOTES)
    if (
        (record["id"] in existing)
        if existing is not None
        else (session.get(MemberNote, record["id"]) is not None)
    ):
        return _note_updated(session, actor, record)
    members.add_note(
        session,
        actor=actor,
        member_id=_text(record, "member_id", required=True),
        body=_text(record, "body", required=True),
        noted_at=_time(record, "noted_at"),
        note_id=record["id"],
        known_new=existing is not None,
    )


def _note_updated(session, actor, record):
    members.edit_note(
        session, actor=actor, note_id=record["id"], body=_text(record, "body", required=True)
    )


def _note_deleted(session, actor, record_id):
    if session.get(MemberNote, record_id) is not None:  # a delete of a missing id is ignored
        members.delete_note(session, actor=actor, note_id=record_id)


def _tag_created(session, actor, record):
    if session.get(MemberTag, record["id"]) is not None:
        return None
    members.tag_with_id(
        session,
        actor=actor,
        member_id=_text(record, "member_id", required=True),
        tag_id=_text(record, "tag_id", required=True),
        record_id=record["id"],
    )


def _tag_deleted(session, actor, record_id):
    if session.get(MemberTag, record_id) is not None:
        members.untag_record(session, actor=actor, record_id=record_id)


# --- tasks --------------------------------------------------------------------------


def _task_updated(session, actor, record):
    task = policy.get_visible(session, actor, Task, record["id"], label="Task")
    if task.assignee_id is None and record.get("assignee_id") == actor.staff_id:
        tasks.assign(session, actor=actor, task_id=task.id, guide_id=actor.staff_id)
    if record.get("state") == "done" and task.state == "open":
        tasks.complete(
            session,
            actor=actor,
            task_id=task.id,
            result=record.get("result") or "done",
            note=record.get("note"),
            proof_url=record.get("proof_url"),
            done_at=_time(record, "done_at_client"),
        )


def _target_updated(session, actor, record):
    target = policy.get_visible(session, actor, TaskTarget, record["id"], label="Task target")
    result = record.get("result")
    if result and (result, record.get("note")) != (target.result, target.note):
        tasks.record_result(
            session,
            actor=actor,
            task_id=target.task_id,
            member_id=target.member_id,
            result=result,
            note=record.get("note"),
            done_at=_time(record, "done_at_client"),
        )


def _share_created(session, actor, record):
    from guideapp.materials.service import record_share

    record_share(
        session,
        actor=actor,
        material_id=_text(record, "material_id", required=True),
        channel=_text(record, "channel", required=True),
        member_id=_text(record, "member_id"),
        share_id=record["id"],
        shared_at_client=_time(record, "shared_at"),
    )


_HANDLERS = {
    ("shares", "created"): _share_created,
    ("members", "created"): _member_created,
    ("members", "updated"): _member_updated,
    ("member_notes", "created"): _note_created,
    ("member_notes", "updated"): _note_updated,
    ("member_notes", "deleted"): _note_deleted,
    ("member_tags", "created"): _tag_created,
    ("member_tags", "updated"): lambda *a: None,
    ("member_tags", "deleted"): _tag_deleted,
    ("tasks", "updated"): _task_updated,
    ("task_targets", "updated"): _target_updated,
}


# --- raw values ----------------------------------------------------------------------


def _text(record: dict, key: str, required: bool = False) -> str | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(errors={key: ["A non-empty string."]})
    return value


def _time(record: dict, key: str) -> datetime | None:
    """Phone times (ms since the epoch) are kept as facts only, never for ordering."""
    value = record.get(key)
    if value in (None, 0):
        return None
    if not isinstance(value, (int, float)) or not 0 < value < 4_102_444_800_000:
        raise InvalidInput(errors={key: ["Milliseconds since the epoch."]})
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def _date(value) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError as exc:
        raise InvalidInput(errors={"birthday": ["YYYY-MM-DD."]}) from exc
