"""The one object a push carries from `push()` down to the appliers.

Who pushes, from which cursor, the changes, and what the bulk look-ups found: which pushed
ids exist, and the rows the pusher may see (members, notes, member tags, tags, tasks,
targets), each found with a few set-based queries per push instead of one per record.
Nothing is kept in `session.info`: the context is a local of `push()` and goes with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.coupons.models import Coupon
from guideapp.policy.actor import Actor
from guideapp.db import any_of
from guideapp.errors import NotFound
from guideapp.materials.models import Share
from guideapp.members import service as members
from guideapp.members.service import NewNote
from guideapp.members.models import Member, MemberNote, MemberTag, Tag
from guideapp.tasks.models import Task, TaskTarget

OUT_OF_SCOPE = "Not in your scope (another store's, another guide's, or unknown)."
# Tables whose pushed ids are looked up: a `created` id that exists is applied as an update,
# a `deleted` id that does not is ignored.
MODELS = {
    "coupons": Coupon,
    "members": Member,
    "member_notes": MemberNote,
    "member_tags": MemberTag,
    "shares": Share,
    "tasks": Task,
    "task_targets": TaskTarget,
}


@dataclass
class PushContext:
    session: Session
    actor: Actor
    last_pulled_at: int
    changes: dict
    # Pushed ids that exist on the server, per table (in any tenant: ids are primary keys).
    existing: dict[str, set[str]] = field(default_factory=dict)
    # Rows the actor may see (the policy's read rules), by id.
    members: dict[str, Member] = field(default_factory=dict)  # requested id -> survivor
    notes: dict[str, MemberNote] = field(default_factory=dict)
    member_tags: dict[str, MemberTag] = field(default_factory=dict)
    tags: dict[str, Tag] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    targets: dict[str, TaskTarget] = field(default_factory=dict)
    # (table, record id) -> why the server's state wins over the pushed record.
    server_wins: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def load(
        cls, session: Session, *, actor: Actor, last_pulled_at: int, changes: dict
    ) -> PushContext:
        ctx = cls(session=session, actor=actor, last_pulled_at=last_pulled_at, changes=changes)
        for table, model in MODELS.items():
            ids = ctx.ids(table)
            ctx.existing[table] = set(_ids(session, model, ids)) if ids else set()
        # Tasks and targets come whole into the session: server_wins reads them by id.
        targets = _rows(session, TaskTarget, ctx.existing["task_targets"])
        _rows(session, Task, ctx.existing["tasks"] | {t.task_id for t in targets.values()})
        ctx.notes = _visible(session, actor, MemberNote, ctx.existing["member_notes"])
        ctx.member_tags = _visible(session, actor, MemberTag, ctx.existing["member_tags"])
        ctx.tasks = _visible(session, actor, Task, ctx.existing["tasks"])
        ctx.targets = _visible(session, actor, TaskTarget, ctx.existing["task_targets"])
        ctx.tags = _visible(
            session, actor, Tag, {_str(r.get("tag_id")) for r in ctx.records("member_tags")}
        )
        named = set(ctx.ids("members"))
        for table in ("member_notes", "member_tags", "shares", "coupons"):
            named |= {_str(r.get("member_id")) for r in ctx.records(table, "created")}
        named |= {n.member_id for n in ctx.notes.values()}
        named |= {t.member_id for t in ctx.member_tags.values()}
        named.discard(None)
        if named:
            ctx.members = members.visible_members(session, actor=actor, member_ids=named)
        return ctx

    def records(self, table: str, *operations: str) -> list:
        ops = self.changes.get(table) or {}
        return [r for op in operations or ("created", "updated") for r in ops.get(op) or []]

    def ids(self, table: str) -> list[str]:
        ops = self.changes.get(table) or {}
        return [r["id"] for r in self.records(table)] + list(ops.get("deleted") or [])

    def member(self, member_id: str) -> Member:
        member = self.members.get(member_id)
        if member is None:
            raise NotFound(OUT_OF_SCOPE)
        return member

    def write_notes(self, notes: list[NewNote]) -> None:
        members.write_notes(self.session, actor=self.actor, notes=notes)

    def known_changes(self) -> dict:
        """The changes with task and target updates narrowed to ids that exist."""
        changes = dict(self.changes)
        for table in ("tasks", "task_targets"):
            if table in changes:
                ops = dict(changes[table])
                ops["updated"] = [
                    r for r in ops.get("updated") or [] if r["id"] in self.existing[table]
                ]
                changes[table] = ops
        return changes


def _str(value):
    return value if isinstance(value, str) else None


def _ids(session: Session, model, ids) -> list[str]:
    ids = {i for i in ids if isinstance(i, str)}
    if not ids:
        return []
    return list(session.scalars(select(model.id).where(any_of(session, model.id, ids))))


def _rows(session: Session, model, ids) -> dict:
    if not ids:
        return {}
    stmt = select(model).where(any_of(session, model.id, ids))
    return {row.id: row for row in session.scalars(stmt)}


def _visible(session: Session, actor: Actor, model, ids) -> dict:
    ids = {i for i in ids if isinstance(i, str)}
    if not ids:
        return {}
    stmt = policy.scoped_select(actor, model).where(any_of(session, model.id, ids))
    return {row.id: row for row in session.scalars(stmt)}
