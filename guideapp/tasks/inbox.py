"""The guide's inbox: today / overdue / upcoming / done, with what the phone shows embedded."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import and_, bindparam, case, func, select, union_all
from sqlalchemy.orm import Session

from guideapp.auth import policy
from guideapp.auth.scope import Actor
from guideapp.db import utcnow
from guideapp.sync.changelog import region_scope, staff_scope, store_scope, tenant_scope
from guideapp.sync.models import ChangeLogEntry
from guideapp.tasks.inbox_cache import CachedPage, PageCache, page
from guideapp.members.models import Member
from guideapp.members.service import present
from guideapp.pagination import paginate
from guideapp.tasks.models import Task, TaskTarget
from guideapp.tasks.service import progress

BUCKETS = ("today", "overdue", "upcoming", "done")
EMBEDDED_TARGETS = 50
MAX_CACHE_AGE = timedelta(seconds=60)  # a bound on staleness the change log cannot see
# Content domains add suggested material / reply summaries:
# fn(session, actor, tasks) -> {task id: dict}.
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


def inbox(session: Session, *, actor: Actor, bucket: str, limit: int, cursor: str | None,
          now: datetime | None = None):
    now = now or utcnow()
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
        for task_id, extra in provider(session, actor, tasks).items():
            suggestions.setdefault(task_id, {}).update(extra)
    return [{"task": t, "progress": counts[t.id], "targets": by_task.get(t.id, []),
             "suggested": suggestions.get(t.id, {})} for t in tasks]


def cached_inbox(session: Session, *, actor: Actor, bucket: str, limit: int,
                 cursor: str | None, cache: PageCache,
                 render: Callable[[dict], bytes]) -> CachedPage:
    """The inbox page as rendered bytes with an ETag, from `cache` while still current.

    The version is read before the page, so a page is never older than its stamp.
    """
    now = utcnow()
    version = inbox_version(session, actor)
    key = (actor.staff_id, actor.role, actor.store_id, actor.region_id, bucket, limit, cursor)
    found = cache.get(key, version=version, now=now)
    if found is not None:
        return found
    body = render(inbox(session, actor=actor, bucket=bucket, limit=limit, cursor=cursor,
                        now=now))
    entry = page(version, _next_change_at(session, actor, now), body)
    cache.put(key, entry)
    return entry


def _newest_in(scope_param: str):
    return select(func.max(ChangeLogEntry.seq).label("seq")).where(
        ChangeLogEntry.tenant_id == bindparam("tenant_id"),
        ChangeLogEntry.scope == bindparam(scope_param))


# Built once, run on every inbox request: one backward index step per scope.
_NEWEST = union_all(*[_newest_in(f"scope_{i}") for i in range(4)]).subquery()
_INBOX_VERSION = select(func.max(_NEWEST.c.seq))


def inbox_version(session: Session, actor: Actor) -> int:
    """The newest change-log sequence in any scope the actor's phone follows."""
    own = staff_scope(actor.staff_id)  # stands in for a store or region the actor lacks
    scopes = [tenant_scope(actor.tenant_id), own,
              store_scope(actor.store_id) if actor.store_id else own,
              region_scope(actor.region_id) if actor.region_id else own]
    params = {"tenant_id": actor.tenant_id, **{f"scope_{i}": s for i, s in enumerate(scopes)}}
    return session.connection().execute(_INBOX_VERSION, params).scalar() or 0


def _next_change_at(session: Session, actor: Actor, now: datetime) -> datetime:
    """When the clock alone moves a task of the actor's between buckets (opens, falls due)."""
    open_tasks = policy.scoped_select(actor, Task).where(Task.state == "open")
    starts = open_tasks.with_only_columns(func.min(Task.starts_at)).where(Task.starts_at > now)
    dues = open_tasks.with_only_columns(func.min(Task.due_at)).where(Task.due_at >= now)
    moments = session.execute(select(starts.scalar_subquery(), dues.scalar_subquery())).one()
    return min([now + MAX_CACHE_AGE, *[m for m in moments if m is not None]])
