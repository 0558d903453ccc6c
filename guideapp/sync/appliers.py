"""Pushed records, table by table, turned into calls of the services REST uses.

Each record is first *planned* (`plan`): validated with the schema its REST endpoint uses
(the same limits, e.g. a note's 2,000 characters), checked against the rows the push
context found in bulk (scope, authorship, existence), and either refused (a DomainError),
found to need nothing (None: already applied, unchanged, a delete of a missing id), or
turned into a step: a call of the domain's service, run later in the replay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import marshmallow as ma
from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.errors import InvalidInput
from guideapp.changelog import ChangeLogEntry, log_change, staff_scope
from guideapp.coupons import service as coupons
from guideapp.coupons.schemas import IssueSchema
from guideapp.db import any_of
from guideapp.errors import NotFound
from guideapp.materials.schemas import ShareSchema
from guideapp.members import service as members
from guideapp.members.models import Member, MemberNote, MemberTag
from guideapp.members.schemas import MemberRegisterSchema, NoteSchema
from guideapp.sync.context import OUT_OF_SCOPE, PushContext
from guideapp.sync.tables import BY_NAME
from guideapp.tasks import service as tasks
from guideapp.tasks.models import Task, TaskTarget
from guideapp.tasks.schemas import CompleteSchema, TargetResultSchema

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
READ_ONLY = "Read-only on the phone."

Step = Callable[[], object]


@dataclass(frozen=True)
class Batched:
    """A step that runs with its neighbours of the same `key` as one call, `run(args)`
    (e.g. 5,000 notes as one INSERT); alone, `step()` is `run([args])`."""

    key: str
    run: Callable[[list], object]
    args: object

    def __call__(self):
        return self.run([self.args])


# The REST endpoints' schemas, instantiated once (marshmallow schemas are reusable).
NOTE = NoteSchema()
NOTE_BODY = NoteSchema(only=("body",))
MEMBER_NEW = MemberRegisterSchema(exclude=("guide_id",))
MEMBER_PROFILE = MemberRegisterSchema(only=("name", "gender", "birthday"), partial=True)
COMPLETE = CompleteSchema()
TARGET_RESULT = TargetResultSchema()
SHARE = ShareSchema()
ISSUE = IssueSchema()


def plan(ctx: PushContext, table: str, operation: str, record) -> Step | None:
    """What applying this record takes: a step, None (nothing to do), or a DomainError."""
    planner = _PLANNERS.get((table, operation))
    if planner is None:
        raise InvalidInput(f"{table}: a phone cannot {operation[:-1]} these records. {READ_ONLY}")
    return planner(ctx, record)


def server_wins(
    session: Session, actor: Actor, changes: dict, last_pulled_at: int
) -> dict[tuple[str, str], str]:
    """Pushed records whose server state must win: the attempt is kept, not applied.

    A member counts only if they left this guide after the phone's last pull; a member
    who never was theirs is out of scope, refused per record instead. Likewise a task
    counts only if the phone could hold it (visible, or changed in its scopes since its
    pull): any other id gets the answer an unknown id gets (ids are guessable)."""
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
    left = _left_since(session, actor, {m.id for m in owners.values()}, last_pulled_at)
    for table in ("members", "member_notes", "member_tags"):
        for operation in ("created", "updated", "deleted"):
            for record in (changes.get(table) or {}).get(operation) or []:
                record_id = record if operation == "deleted" else record["id"]
                member = owners.get((table, record_id))
                if (
                    member is not None
                    and actor.is_guide
                    and member.guide_id != actor.staff_id
                    and member.id in left
                ):
                    found[(table, record_id)] = "The member is no longer bound to you."
    return _held_by_the_phone(session, actor, found, last_pulled_at)


def _left_since(session, actor: Actor, member_ids: set[str], last_pulled_at: int) -> set[str]:
    """The members among `member_ids` that changed in this guide's scope since the pull."""
    if not member_ids:
        return set()
    return set(
        session.scalars(
            select(ChangeLogEntry.record_id).where(
                ChangeLogEntry.tenant_id == actor.tenant_id,
                ChangeLogEntry.table_name == "members",
                any_of(session, ChangeLogEntry.record_id, member_ids),
                ChangeLogEntry.scope == staff_scope(actor.staff_id),
                ChangeLogEntry.seq > last_pulled_at,
            )
        )
    )


def _held_by_the_phone(session, actor: Actor, found: dict, last_pulled_at: int) -> dict:
    """Drop the task and target entries this phone never held: neither visible to the
    actor now nor changed in the scopes their phone follows since its pull."""
    held: set[tuple[str, str]] = set()
    for table, model in (("tasks", Task), ("task_targets", TaskTarget)):
        ids = sorted(i for t, i in found if t == table)
        if not ids:
            continue
        held |= {(table, i) for i in _visible_ids(session, actor, model, ids)}
        held |= {
            (table, i)
            for i in session.scalars(
                select(ChangeLogEntry.record_id).where(
                    ChangeLogEntry.tenant_id == actor.tenant_id,
                    ChangeLogEntry.table_name == table,
                    ChangeLogEntry.record_id.in_(ids),
                    ChangeLogEntry.scope.in_(BY_NAME[table].scopes(actor)),
                    ChangeLogEntry.seq > last_pulled_at,
                )
            )
        }
    return {
        key: reason
        for key, reason in found.items()
        if key[0] not in ("tasks", "task_targets") or key in held
    }


def _visible_ids(session, actor: Actor, model, ids: list[str]) -> set[str]:
    return set(
        session.scalars(select(model.id).where(model.id.in_(ids), policy.visible(actor, model)))
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
        ids = set(records) | set(ops.get("deleted") or [])
        stored = (
            dict(
                session.execute(
                    select(model.id, model.member_id).where(any_of(session, model.id, ids))
                ).all()
            )
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


def _member_created(ctx: PushContext, record) -> Step | None:
    if record["id"] in ctx.existing["members"]:  # the earlier push got through
        return _member_updated(ctx, record)
    if not _CLIENT_ID.match(record["id"]):
        raise InvalidInput(errors={"id": ["1-32 letters, digits, '-' or '_'."]})
    data = _load(
        MEMBER_NEW,
        {
            "phone": record.get("phone"),
            "name": record.get("name") or "",
            "gender": record.get("gender") or "unknown",
            "unionid": record.get("unionid"),
            "birthday": record.get("birthday") or None,
        },
    )
    data["guide_id"] = ctx.actor.staff_id
    return lambda: members.register(ctx.session, actor=ctx.actor, member_id=record["id"], data=data)


def _member_updated(ctx: PushContext, record) -> Step | None:
    member = ctx.member(record["id"])
    data = _load(
        MEMBER_PROFILE,
        {
            **{k: record[k] for k in ("name", "gender") if isinstance(record.get(k), str)},
            **({"birthday": record["birthday"] or None} if "birthday" in record else {}),
        },
    )
    if all(getattr(member, k) == v for k, v in data.items()):
        return None
    policy.require_write(ctx.actor, member, "update")
    return lambda: members.update_profile(ctx.session, actor=ctx.actor, member=member, data=data)


# --- notes and tags -------------------------------------------------------------------


def _note_created(ctx: PushContext, record) -> Step | None:
    if record["id"] in ctx.existing["member_notes"]:  # the earlier push got through
        return _note_updated(ctx, record)
    data = _load(
        NOTE,
        {"id": record["id"], "body": record.get("body"), "noted_at": _time(record, "noted_at")},
    )
    member = ctx.member(_text(record, "member_id"))
    policy.require_write(ctx.actor, member, "note")
    note = members.NewNote(member, data["body"], data.get("noted_at"), record["id"])
    return Batched("member_notes.created", ctx.write_notes, note)


def _note_updated(ctx: PushContext, record) -> Step | None:
    note = _visible(ctx.notes, record["id"])
    body = _load(NOTE_BODY, {"body": record.get("body")})["body"]
    members.require_note_author(ctx.actor, note)
    if body == note.body:
        return None
    return lambda: members.edit_note(ctx.session, actor=ctx.actor, note=note, body=body)


def _note_deleted(ctx: PushContext, record_id) -> Step | None:
    if record_id not in ctx.existing["member_notes"]:  # a delete of a missing id is ignored
        return None
    note = _visible(ctx.notes, record_id)
    members.require_note_author(ctx.actor, note)
    return lambda: members.delete_note(ctx.session, actor=ctx.actor, note=note)


def _tag_created(ctx: PushContext, record) -> Step | None:
    if record["id"] in ctx.existing["member_tags"]:
        return None
    _fits(MemberTag.id, record["id"], "id")
    member = ctx.member(_text(record, "member_id"))
    tag = _visible(ctx.tags, _text(record, "tag_id"))
    policy.require_write(ctx.actor, member, "tag")
    return lambda: members.tag_record(
        ctx.session, actor=ctx.actor, member=member, tag=tag, record_id=record["id"]
    )


def _tag_deleted(ctx: PushContext, record_id) -> Step | None:
    if record_id not in ctx.existing["member_tags"]:
        return None
    row = _visible(ctx.member_tags, record_id)
    member = ctx.member(row.member_id)
    policy.require_write(ctx.actor, member, "tag")
    return lambda: members.untag_record(ctx.session, actor=ctx.actor, member=member, row=row)


# --- tasks --------------------------------------------------------------------------


def _task_updated(ctx: PushContext, record) -> Step | None:
    task = _visible(ctx.tasks, record["id"])
    claim = task.assignee_id is None and record.get("assignee_id") == ctx.actor.staff_id
    done = None
    if record.get("state") == "done" and task.state == "open":
        done = _load(
            COMPLETE,
            {
                "result": record.get("result") or "done",
                "note": record.get("note"),
                "proof_url": record.get("proof_url") or None,
                "done_at": _time(record, "done_at_client"),
            },
        )
    if not claim and done is None:
        return None
    if claim:
        policy.require_write(ctx.actor, task, "claim")

    def step():
        if claim:
            tasks.assign(ctx.session, actor=ctx.actor, task_id=task.id, guide_id=ctx.actor.staff_id)
        if done is not None:
            tasks.complete(
                ctx.session,
                actor=ctx.actor,
                task_id=task.id,
                result=done["result"],
                note=done.get("note"),
                proof_url=done.get("proof_url"),
                done_at=done.get("done_at"),
            )

    return step


def _target_updated(ctx: PushContext, record) -> Step | None:
    target = _visible(ctx.targets, record["id"])
    result = record.get("result")
    if not result or (result, record.get("note")) == (target.result, target.note):
        return None
    data = _load(
        TARGET_RESULT,
        {"result": result, "note": record.get("note"), "done_at": _time(record, "done_at_client")},
    )
    return lambda: tasks.record_result(
        ctx.session,
        actor=ctx.actor,
        task_id=target.task_id,
        member_id=target.member_id,
        result=data["result"],
        note=data.get("note"),
        done_at=data.get("done_at"),
    )


def _share_created(ctx: PushContext, record) -> Step | None:
    from guideapp.materials.service import record_share

    if record["id"] in ctx.existing["shares"]:  # a retried push of the same share counts once
        return None
    data = _load(
        SHARE,
        {
            "id": record["id"],
            "channel": record.get("channel"),
            "member_id": record.get("member_id"),
            "shared_at_client": _time(record, "shared_at"),
        },
    )
    material_id = _text(record, "material_id")
    return lambda: record_share(
        ctx.session,
        actor=ctx.actor,
        material_id=material_id,
        channel=data["channel"],
        member_id=data.get("member_id"),
        share_id=record["id"],
        shared_at_client=data.get("shared_at_client"),
    )


def _coupon_created(ctx: PushContext, record) -> Step | None:
    """A guide issued a coupon offline: issued once, keyed by the record's id (a retried
    push, or one whose answer was lost, finds it issued). Out of stock, at the limit or
    staff: refused per record, and the phone drops its copy at the next pull."""
    if record["id"] in ctx.existing["coupons"]:  # the earlier push got through
        return None
    if not _CLIENT_ID.match(record["id"]):
        raise InvalidInput(errors={"id": ["1-32 letters, digits, '-' or '_'."]})
    data = _load(
        ISSUE, {"template_id": record.get("template_id"), "task_id": record.get("task_id")}
    )
    member = ctx.member(_text(record, "member_id"))
    return lambda: coupons.issue_to_member(
        ctx.session,
        actor=ctx.actor,
        member_id=member.id,
        template_id=data["template_id"],
        task_id=data.get("task_id"),
        key=f"push:{record['id']}",
        coupon_id=record["id"],
    )


_PLANNERS = {
    ("shares", "created"): _share_created,
    ("coupons", "created"): _coupon_created,
    ("members", "created"): _member_created,
    ("members", "updated"): _member_updated,
    ("member_notes", "created"): _note_created,
    ("member_notes", "updated"): _note_updated,
    ("member_notes", "deleted"): _note_deleted,
    ("member_tags", "created"): _tag_created,
    ("member_tags", "updated"): lambda ctx, record: None,
    ("member_tags", "deleted"): _tag_deleted,
    ("tasks", "updated"): _task_updated,
    ("task_targets", "updated"): _target_updated,
}


# --- raw values ----------------------------------------------------------------------


def _load(schema: ma.Schema, data: dict) -> dict:
    """Validate with the REST schema; a field the phone left out (None) counts as absent
    unless the schema takes null for it."""
    data = {k: v for k, v in data.items() if v is not None or _nullable(schema, k)}
    try:
        return schema.load(data)
    except ma.ValidationError as error:
        raise InvalidInput(errors=error.normalized_messages()) from error


def _nullable(schema: ma.Schema, key: str) -> bool:
    field = schema.fields.get(key)
    return field is not None and field.allow_none


def _visible(rows: dict, record_id):
    row = rows.get(record_id) if isinstance(record_id, str) else None
    if row is None:
        raise NotFound(OUT_OF_SCOPE)
    return row


def _text(record: dict, key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(errors={key: ["A non-empty string."]})
    return value


def _fits(column, value: str, key: str) -> None:
    if len(value) > column.type.length:
        raise InvalidInput(errors={key: [f"At most {column.type.length} characters."]})


def _time(record: dict, key: str) -> str | None:
    """Phone times (ms since the epoch), as the ISO text the REST schemas read. They are
    kept as facts only, never for ordering."""
    value = record.get(key)
    if value in (None, 0):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(errors={key: ["Milliseconds since the epoch."]})
    if not 0 < value < 4_102_444_800_000:
        raise InvalidInput(errors={key: ["Milliseconds since the epoch."]})
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc).isoformat()
