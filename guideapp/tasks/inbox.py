"""The guide's inbox: today / overdue / upcoming / done, with what the phone shows embedded."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from guideapp.auth import policy
from guideapp.auth.scope import Actor
from guideapp.db import utcnow
from guideapp.members.models import Member
from guideapp.members.service import present
from guideapp.pagination import paginate
from guideapp.tasks.models import Task, TaskTarget
from guideapp.tasks.service import progress

BUCKETS = ("today", "overdue", "upcoming", "done")
EMBEDDED_TARGETS = 50
# Content domains add suggested material / reply summaries: fn(session, tasks) -> {id: dict}.
SUGGESTION_EMBEDS: list = []


def bucket_filter(bucket: str, now: datetime):
    """A task surfaces in 'today' when its window opens (an SOP task made at 2 a.m. for
    10:00 stays 'upcoming' until 10:00), and is 'overdue' once its due time passed."""
    is_open = Task.state == "open"
    return {
        "overdue": and_(is_open, Task.due_at < now),
        "today": and_(is_open, Task.due_at >= now, Task.starts_at <= now),
        "upcoming": and_(is_open, Task.starts_at > now),
        "done": Task.state == "done",
    }[bucket]


def inbox(session: Session, *, actor: Actor, bucket: str, limit: int, cursor: str | None):
    now = utcnow()
    scoped = policy.scoped_select(actor, Task)
    if actor.is_guide:  # the inbox proper; managers see their whole store
        scoped = scoped.where(Task.assignee_id == actor.staff_id)
    counts = _counts(session, actor, now)
    stmt = scoped.where(bucket_filter(bucket, now))
    if bucket == "done":
        page = paginate(session, stmt, [Task.completed_at, Task.id], limit=limit, cursor=cursor,
                        descending=True)
    else:
        page = paginate(session, stmt, [Task.due_at, Task.id], limit=limit, cursor=cursor)
    claimable = []
    if actor.is_guide and bucket == "today" and cursor is None:
        claimable = session.scalars(policy.scoped_select(actor, Task).where(
            Task.assignee_id.is_(None), bucket_filter("today", now))
            .order_by(Task.due_at, Task.id).limit(20)).all()
    return {"counts": counts, "items": embed(session, actor, page["items"]),
            "claimable": embed(session, actor, claimable), "next_cursor": page["next_cursor"]}


def _counts(session, actor, now) -> dict:
    stmt = policy.scoped_select(actor, Task).with_only_columns(*[
        func.coalesce(func.sum(case((bucket_filter(b, now), 1), else_=0)), 0)
        for b in BUCKETS])
    if actor.is_guide:
        stmt = stmt.where(Task.assignee_id == actor.staff_id)
    return dict(zip(BUCKETS, (int(v) for v in session.execute(stmt).one()), strict=True))


def embed(session: Session, actor: Actor, tasks: list[Task]) -> list[dict]:
    """Tasks with progress, first targets and their member summaries: three queries in all."""
    if not tasks:
        return []
    ids = [t.id for t in tasks]
    counts = progress(session, ids)
    targets = session.execute(
        select(TaskTarget, Member).join(Member, Member.id == TaskTarget.member_id)
        .where(TaskTarget.task_id.in_(ids)).order_by(TaskTarget.task_id, TaskTarget.id)).all()
    by_task: dict[str, list] = {}
    for target, member in targets:
        rows = by_task.setdefault(target.task_id, [])
        if len(rows) < EMBEDDED_TARGETS:
            card = present(actor, member)
            rows.append({"member_id": member.id, "result": target.result, "note": target.note,
                         "result_at": target.result_at,
                         "member": {k: card[k] for k in ("name", "phone", "stage", "tier",
                                                          "birthday", "last_order_at")}})
    suggestions: dict[str, dict] = {}
    for provider in SUGGESTION_EMBEDS:
        for task_id, extra in provider(session, tasks).items():
            suggestions.setdefault(task_id, {}).update(extra)
    return [{"task": t, "progress": counts[t.id], "targets": by_task.get(t.id, []),
             "suggested": suggestions.get(t.id, {})} for t in tasks]
