"""Open tasks follow their members: on transfer and on merge (receivers of the members
signals, connected in guideapp/wiring.py), and the card shows a member's open tasks."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, String, bindparam, delete, select, update
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.db import new_id, utcnow
from guideapp.changelog import log_change, log_changes, staff_scope, store_scope
from guideapp.policy.actor import Actor
from guideapp.statements import Prebuilt
from guideapp.tasks.models import Task, TaskTarget
from guideapp.tasks.service import log_task, task_scopes


def move_open_tasks(
    session: Session,
    *,
    tenant_id: str,
    member_ids: list[str],
    from_guide,
    to_guide,
    now,
    whole_book: bool = False,
) -> None:
    """Tasks naming only moved members change hands; mixed ones split off a sibling task.

    With `whole_book` (the guide handed over everything) their other open tasks move too.
    """
    moved = set(member_ids)
    open_tasks = select(Task).where(
        Task.tenant_id == tenant_id, Task.state == "open", Task.assignee_id == from_guide.id
    )
    for task in session.scalars(open_tasks).all():
        targets = session.scalars(select(TaskTarget).where(TaskTarget.task_id == task.id)).all()
        mine = [t for t in targets if t.member_id in moved]
        if (targets and len(mine) == len(targets)) or (not targets and whole_book):
            _reassign(session, task, to_guide)
        elif mine:
            _split(session, task, mine, to_guide)


def _reassign(session: Session, task: Task, to_guide) -> None:
    old = task_scopes(task)
    task.assignee_id, task.store_id, task.updated_at = to_guide.id, to_guide.store_id, utcnow()
    session.flush()
    log_task(session, task, old_scopes=old, with_targets=True)


def _split(session: Session, task: Task, targets: list[TaskTarget], to_guide) -> None:
    key = f"{task.dedupe_key}:to:{to_guide.id}"
    sibling = session.scalar(
        select(Task).where(Task.tenant_id == task.tenant_id, Task.dedupe_key == key)
    )
    if sibling is None:
        columns = {c.key: getattr(task, c.key) for c in Task.__table__.columns}
        columns.update(
            id=new_id(),
            dedupe_key=key,
            assignee_id=to_guide.id,
            store_id=to_guide.store_id,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        sibling = Task(**columns)
        session.add(sibling)
        session.flush()
    old = task_scopes(task)
    session.execute(
        update(TaskTarget)
        .where(TaskTarget.id.in_([t.id for t in targets]))
        .values(task_id=sibling.id, updated_at=utcnow())
    )
    session.flush()
    for target in targets:
        log_change(
            session,
            tenant_id=task.tenant_id,
            table="task_targets",
            record_id=target.id,
            scopes={*old, *task_scopes(sibling)},
        )
    log_task(session, task)
    log_task(session, sibling)


def merge_targets(session: Session, *, survivor, merged) -> dict:
    """Targets of the merged member now name the survivor; a task naming both keeps one.

    Phones holding the tasks learn both (set-based): the moved targets are logged in their
    task's scopes, the deduplicated ones as deleted there."""
    both = select(TaskTarget.task_id).where(TaskTarget.member_id == survivor.id)
    rows = session.execute(
        select(TaskTarget.id, TaskTarget.task_id.in_(both), Task.store_id, Task.assignee_id)
        .join(Task, Task.id == TaskTarget.task_id)
        .where(TaskTarget.member_id == merged.id)
    ).all()
    if not rows:
        return {"task_targets": 0, "task_targets_deduplicated": 0}
    dropped = cast(
        CursorResult[Any],
        session.execute(
            delete(TaskTarget).where(
                TaskTarget.member_id == merged.id, TaskTarget.task_id.in_(both)
            )
        ),
    ).rowcount
    moved = cast(
        CursorResult[Any],
        session.execute(
            update(TaskTarget)
            .where(TaskTarget.member_id == merged.id)
            .values(member_id=survivor.id, updated_at=utcnow())
        ),
    ).rowcount
    for deleted in (False, True):
        log_changes(
            session,
            tenant_id=survivor.tenant_id,
            table="task_targets",
            rows=[
                (target_id, scope)
                for target_id, dropped_here, store_id, assignee_id in rows
                if bool(dropped_here) is deleted
                for scope in (store_scope(store_id), assignee_id and staff_scope(assignee_id))
                if scope
            ],
            deleted=deleted,
        )
    return {"task_targets": moved, "task_targets_deduplicated": dropped}


def open_tasks_section(session: Session, actor, member) -> dict:
    """The card's 'open tasks for this member', those the task read rule lets the actor see."""
    params = {**actor.bound_values(), "member_id": member.id}
    rows = _OPEN_TASKS.execute(session, params, actor.shape).records()
    return {
        "open_tasks": [
            {
                "task_id": r.id,
                "title": r.title,
                "due_at": r.due_at.isoformat(),
                "assignee_id": r.assignee_id,
                "result": r.result,
            }
            for r in rows
        ]
    }


_OPEN_TASKS = Prebuilt(
    lambda _dialect, shape: (
        select(Task.id, Task.title, Task.due_at, Task.assignee_id, TaskTarget.result)
        .join(TaskTarget, TaskTarget.task_id == Task.id)
        .where(
            TaskTarget.member_id == bindparam("member_id", type_=String()),
            Task.state == "open",
            policy.visible(Actor.parametric(shape), Task),
        )
        .order_by(Task.due_at)
        .limit(20)
    ),
    reads=True,
)
