"""The guide's inbox: today / overdue / upcoming / done, with what the phone shows embedded."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy import String, and_, case, func, literal, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.db import utcnow
from guideapp.changelog import newest_change_seq
from guideapp.changelog.pages import CachedPage, PageCache, page
from guideapp.members.models import Member
from guideapp.members.service import present
from guideapp.pagination import paginate
from guideapp.tasks.models import Task, TaskTarget
from guideapp.tasks.service import progress
from guideapp.tasks.signals import inbox_suggestions_requested

BUCKETS = ("today", "overdue", "upcoming", "done")
EMBEDDED_TARGETS = 50
MAX_CACHE_AGE = timedelta(seconds=60)  # a bound on staleness the change log cannot see


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


def inbox(
    session: Session,
    *,
    actor: Actor,
    bucket: str,
    limit: int,
    cursor: str | None,
    now: datetime | None = None,
):
    now = now or utcnow()
    scoped = policy.scoped_select(actor, Task)
    if actor.is_guide:  # the inbox proper; managers see their whole store
        scoped = scoped.where(Task.assignee_id == actor.staff_id)
    counts = _counts(session, actor, now)
    stmt = scoped.where(bucket_filter(bucket, now))
    if bucket == "done":
        page = paginate(
            session, stmt, [Task.completed_at, Task.id], limit=limit, cursor=cursor, descending=True
        )
    else:
        page = paginate(session, stmt, [Task.due_at, Task.id], limit=limit, cursor=cursor)
    claimable: Sequence[Task] = []
    if actor.is_guide and bucket == "today" and cursor is None:
        claimable = session.scalars(
            policy.scoped_select(actor, Task)
            .where(Task.assignee_id.is_(None), bucket_filter("today", now))
            .order_by(Task.due_at, Task.id)
            .limit(20)
        ).all()
    return {
        "counts": counts,
        "items": embed(session, actor, page["items"]),
        "claimable": embed(session, actor, claimable),
        "next_cursor": page["next_cursor"],
    }


def _counts(session, actor, now) -> dict:
    stmt = policy.scoped_select(actor, Task).with_only_columns(
        *[func.coalesce(func.sum(case((bucket_filter(b, now), 1), else_=0)), 0) for b in BUCKETS]
    )
    if actor.is_guide:
        stmt = stmt.where(Task.assignee_id == actor.staff_id)
    return dict(zip(BUCKETS, (int(v) for v in session.execute(stmt).one()), strict=True))


def embed(session: Session, actor: Actor, tasks: Sequence[Task]) -> list[dict]:
    """Tasks with progress, first targets and their member summaries: three queries in all."""
    if not tasks:
        return []
    ids = [t.id for t in tasks]
    counts = progress(session, ids)
    targets = session.execute(
        select(TaskTarget, Member)
        .join(Member, Member.id == TaskTarget.member_id)
        .where(TaskTarget.task_id.in_(ids))
        .order_by(TaskTarget.task_id, TaskTarget.id)
    ).all()
    by_task: dict[str, list] = {}
    for target, member in targets:
        rows = by_task.setdefault(target.task_id, [])
        if len(rows) < EMBEDDED_TARGETS:
            card = present(actor, member)
            rows.append(
                {
                    "member_id": member.id,
                    "result": target.result,
                    "note": target.note,
                    "result_at": target.result_at,
                    "member": {
                        k: card[k]
                        for k in ("name", "phone", "stage", "tier", "birthday", "last_order_at")
                    },
                }
            )
    suggestions: dict[str, dict] = {}
    # Content domains answer with their suggested material / reply summaries.
    for _receiver, found in inbox_suggestions_requested.send(session, actor=actor, tasks=tasks):
        for task_id, extra in found.items():
            suggestions.setdefault(task_id, {}).update(extra)
    return [
        {
            "task": t,
            "progress": counts[t.id],
            "targets": by_task.get(t.id, []),
            "suggested": suggestions.get(t.id, {}),
        }
        for t in tasks
    ]


def cached_inbox(
    open_session: Callable[[], Session],
    *,
    actor: Actor,
    bucket: str,
    limit: int,
    cursor: str | None,
    cache: PageCache,
    render: Callable[[dict], bytes],
) -> CachedPage:
    """The inbox page as rendered bytes with an ETag, from `cache` while still current.

    The version is read before the page, so a page is never older than its stamp. A kept
    page needs no session: `open_session` is called only to build one.
    """
    now = utcnow()
    version = actor.change_version
    if version is None:
        version = inbox_version(open_session(), actor)
    key = (actor.staff_id, actor.role, actor.store_id, actor.region_id, bucket, limit, cursor)
    found = cache.get(key, version=version, now=now)
    if found is not None:
        return found
    session = open_session()
    body = render(inbox(session, actor=actor, bucket=bucket, limit=limit, cursor=cursor, now=now))
    entry = page(version, _next_change_at(session, actor, now), body)
    cache.put(key, entry)
    return entry


def inbox_version(session: Session, actor: Actor) -> int:
    """The newest change-log sequence in any scope the actor's phone follows (a request
    reads it with the login check: Blueprint.versioned_read, Actor.change_version)."""
    return session.execute(
        select(
            newest_change_seq(
                literal(actor.tenant_id),
                literal(actor.staff_id),
                literal(actor.store_id, String),
                literal(actor.region_id, String),
            )
        )
    ).scalar_one()


def _next_change_at(session: Session, actor: Actor, now: datetime) -> datetime:
    """When the clock alone moves a task of the actor's between buckets (opens, falls due)."""
    open_tasks = policy.scoped_select(actor, Task).where(Task.state == "open")
    starts = open_tasks.with_only_columns(func.min(Task.starts_at)).where(Task.starts_at > now)
    dues = open_tasks.with_only_columns(func.min(Task.due_at)).where(Task.due_at >= now)
    moments = session.execute(select(starts.scalar_subquery(), dues.scalar_subquery())).one()
    return min([now + MAX_CACHE_AGE, *[m for m in moments if m is not None]])
