"""The guide's inbox: today / overdue / upcoming / done, with what the phone shows embedded."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy import Select, String, and_, bindparam, case, func, literal, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.db import UTCDateTime, any_param, utcnow
from guideapp.changelog import newest_change_seq
from guideapp.changelog.pages import CachedPage, PageCache, page
from guideapp.members.models import Member
from guideapp.members.service import SUMMARY_COLUMNS, present_summary
from guideapp.pagination import KeptPage
from guideapp.statements import Prebuilt
from guideapp.tasks.models import Task, TaskTarget
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
    return _inbox(session, actor, bucket, limit, cursor, now or utcnow())[0]


def _inbox(session, actor: Actor, bucket, limit, cursor, now) -> tuple[dict, datetime]:
    """The page, and when the clock alone next changes it (a task opens or falls due)."""
    params = {**actor.bound_values(), "now": now}
    summary = _SUMMARY.execute(session, params, actor.shape)[0]
    counts = dict(zip(BUCKETS, (int(v) for v in summary[: len(BUCKETS)]), strict=True))
    moments = [m for m in summary[len(BUCKETS) :] if m is not None]
    pages = _DONE_PAGE if bucket == "done" else _OPEN_PAGE
    page = pages.page(session, params, variant=(actor.shape, bucket), limit=limit, cursor=cursor)
    claimable: Sequence[Task] = []
    if actor.is_guide and bucket == "today" and cursor is None:
        claimable = _CLAIMABLE.orm(session, params, actor.shape).scalars().all()
    items = page["items"]
    embedded = embed(session, actor, [*items, *claimable])  # one round of queries for both
    answer = {
        "counts": counts,
        "items": embedded[: len(items)],
        "claimable": embedded[len(items) :],
        "next_cursor": page["next_cursor"],
    }
    return answer, min([now + MAX_CACHE_AGE, *moments])


# The inbox's statements, built once per actor shape (policy.Actor.parametric) and kept: the
# inbox is rebuilt after every change in the guide's scopes, and building its statements
# cost more than running them.


def _now():
    return bindparam("now", type_=UTCDateTime())


def _inbox_of(shape) -> Select:
    """The tasks whose inbox it is: a guide's own, a manager's store's, HQ's tenant's."""
    actor = Actor.parametric(shape)
    stmt = policy.scoped_select(actor, Task)
    if actor.is_guide:  # the inbox proper; managers see their whole store
        stmt = stmt.where(Task.assignee_id == actor.staff_id)
    return stmt


def _summary_statement(dialect: str, shape) -> Select:
    """The counts per bucket, and the next start and due time of an open task the actor
    sees (the claimable pool too), in one statement."""
    now = _now()
    open_tasks = policy.scoped_select(Actor.parametric(shape), Task).where(Task.state == "open")
    starts = open_tasks.with_only_columns(func.min(Task.starts_at)).where(Task.starts_at > now)
    dues = open_tasks.with_only_columns(func.min(Task.due_at)).where(Task.due_at >= now)
    counts = [
        func.coalesce(func.sum(case((bucket_filter(b, now), 1), else_=0)), 0) for b in BUCKETS
    ]
    moments = [q.scalar_subquery() for q in (starts, dues)]
    return _inbox_of(shape).with_only_columns(*counts, *moments)


_SUMMARY = Prebuilt(_summary_statement, reads=True)
_OPEN_PAGE = KeptPage(
    lambda variant: _inbox_of(variant[0]).where(bucket_filter(variant[1], _now())),
    [Task.due_at, Task.id],
)
_DONE_PAGE = KeptPage(
    lambda variant: _inbox_of(variant[0]).where(bucket_filter("done", _now())),
    [Task.completed_at, Task.id],
    descending=True,
)
_CLAIMABLE = Prebuilt(
    lambda dialect, shape: (
        policy.scoped_select(Actor.parametric(shape), Task)
        .where(Task.assignee_id.is_(None), bucket_filter("today", _now()))
        .order_by(Task.due_at, Task.id)
        .limit(20)
    )
)


def embed(session: Session, actor: Actor, tasks: Sequence[Task]) -> list[dict]:
    """Tasks with progress, first targets and their member summaries: one query, and one
    per content domain for the suggestions."""
    if not tasks:
        return []
    rows = _TARGETS.execute(session, {"task_ids": [t.id for t in tasks]}).records()
    progress: dict[str, dict] = {}
    by_task: dict[str, list] = {}
    for row in rows:
        progress[row.task_id] = {"targets": row.targets, "answered": row.answered}
        by_task.setdefault(row.task_id, []).append(
            {
                "member_id": row.member_id,
                "result": row.result,
                "note": row.note,
                "result_at": row.result_at,
                "member": present_summary(actor, row),
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
            "progress": progress.get(t.id, {"targets": 0, "answered": 0}),
            "targets": by_task.get(t.id, []),
            "suggested": suggestions.get(t.id, {}),
        }
        for t in tasks
    ]


def _targets_statement(dialect: str, _variant) -> Select:
    """The tasks' first EMBEDDED_TARGETS targets with their members' summaries, each row
    also carrying its task's progress (targets, answered: counted over all of them)."""
    task = TaskTarget.task_id
    numbered = (
        select(
            TaskTarget.task_id,
            TaskTarget.member_id,
            TaskTarget.result,
            TaskTarget.note,
            TaskTarget.result_at,
            func.row_number().over(partition_by=task, order_by=TaskTarget.id).label("n"),
            func.count().over(partition_by=task).label("targets"),
            func.count(TaskTarget.result).over(partition_by=task).label("answered"),
        )
        .where(any_param(dialect, TaskTarget.task_id, "task_ids"))
        .subquery()
    )
    return (
        select(*numbered.c, *SUMMARY_COLUMNS)
        .join(Member, Member.id == numbered.c.member_id)
        .where(numbered.c.n <= EMBEDDED_TARGETS)
        .order_by(numbered.c.task_id, numbered.c.n)
    )


_TARGETS = Prebuilt(_targets_statement, reads=True)


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
    answer, next_change_at = _inbox(session, actor, bucket, limit, cursor, now)
    entry = page(version, next_change_at, render(answer))
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
