"""Starting, reading and cancelling jobs (no Flask, no huey: the queue rides on the session).

`start` writes the job's row in the caller's transaction and hands its id to the queue only
once that transaction has committed, so a worker never looks for a job that is not there
yet, and a request that rolls back enqueues nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import overload

from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from guideapp.db import utcnow
from guideapp.errors import InvalidInput, InvalidState, NotFound
from guideapp.jobs.kinds import KINDS
from guideapp.jobs.models import ACTIVE, FINISHED, STATES, Job
from guideapp.pagination import paginate

log = logging.getLogger("guideapp.jobs")

QUEUE_KEY = "jobs_queue"  # Session.info: the app's JobQueue (set by its sessionmaker)
PENDING_KEY = "jobs_to_enqueue"
MAX_KEY_LENGTH = 128
DEFAULT_MAX_ATTEMPTS = 5


def start(
    session: Session,
    *,
    tenant_id: str,
    kind: str,
    params: dict | None = None,
    started_by: str | None = None,
    store_id: str | None = None,
    subject: str | None = None,
    total: int | None = None,
    idempotency_key: str | None = None,
    max_attempts: int | None = None,
    enqueue: bool = True,
    delay: float | None = None,
) -> tuple[Job, bool]:
    """The job for this work: (job, True) when queued now; (job, False) for the job already
    started with the same Idempotency-Key, or still active on the same subject.

    The new job goes to the queue when `session` commits; `enqueue=False` leaves it to the
    caller (run_inline for ?wait=true, or a CLI running it in-process). With `delay` (s) it
    is due that much later (a retry of work that failed for now).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    key = _clean_key(idempotency_key)
    if key is not None:
        existing = find_by_key(session, tenant_id, started_by, key)
        if existing is not None:
            return _same_work(existing, kind, subject), False
    if subject is not None:
        active = session.scalar(
            select(Job)
            .where(
                Job.tenant_id == tenant_id,
                Job.subject == subject,
                Job.kind == kind,
                Job.state.in_(ACTIVE),
            )
            .order_by(Job.created_at)
            .limit(1)
        )
        if active is not None:
            return active, False
    queue = session.info.get(QUEUE_KEY)
    job = Job(
        tenant_id=tenant_id,
        kind=kind,
        params=params or {},
        started_by=started_by,
        store_id=store_id,
        subject=subject,
        state="queued",
        progress_total=total,
        progress_unit=KINDS[kind].unit,
        idempotency_key=key,
        max_attempts=max_attempts
        or (queue.settings.max_attempts if queue else None)
        or DEFAULT_MAX_ATTEMPTS,
    )
    if delay:  # recovery leaves a job alone until its heartbeat: its due time, then
        job.heartbeat_at = utcnow() + timedelta(seconds=delay)
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        existing = find_by_key(session, tenant_id, started_by, key) if key else None
        if existing is None:
            raise
        return _same_work(existing, kind, subject), False  # a concurrent twin won
    if enqueue:
        session.info.setdefault(PENDING_KEY, []).append((job.id, delay))
    return job, True


def get(session: Session, *, actor, job_id: str, visible) -> Job:
    job = session.scalar(select(Job).where(Job.id == job_id, visible(actor, Job)))
    if job is None:
        raise NotFound(f"Job {job_id} not found.")
    return job


def list_jobs(
    session: Session,
    *,
    actor,
    visible,
    limit: int,
    cursor: str | None,
    state: str | None = None,
    kind: str | None = None,
):
    """The caller's jobs, newest first (HQ: the tenant's; manager: the store's; guide: own)."""
    stmt = select(Job).where(visible(actor, Job))
    if state:
        if state not in STATES:
            raise InvalidInput(errors={"state": [f"One of {', '.join(STATES)}."]})
        stmt = stmt.where(Job.state == state)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    return paginate(
        session, stmt, [Job.created_at, Job.id], limit=limit, cursor=cursor, descending=True
    )


def cancel(session: Session, *, job: Job) -> Job:
    """A queued job is cancelled at once; a running one stops before its next unit of work
    (what it finished stays, consistent). A finished job cannot be cancelled."""
    if job.state in FINISHED:
        raise InvalidState(f"The job has already {job.state}; there is nothing to cancel.")
    job.cancel_requested = True
    if job.state == "queued":
        job.state, job.finished_at = "cancelled", utcnow()
    session.flush()
    return job


def download(session: Session, *, actor, job_id: str, visible) -> dict:
    """The file a job produced ({key, filename, content_type, size}), seen exactly as the
    job is (not the caller's: 404); 409 until the job has succeeded."""
    job = get(session, actor=actor, job_id=job_id, visible=visible)
    if job.state != "succeeded":
        raise InvalidState(
            f"The job is {job.state}; its file can be downloaded once it has succeeded. "
            f"Follow it at {job_url(job.id)}."
        )
    file = (job.checkpoint or {}).get("file")
    if not file:
        raise NotFound(f"Job {job.id} ({job.kind}) has no file to download.")
    return file


def ensure_due(session: Session, *, tenant_id: str, kind: str, delay: float | None = None) -> Job:
    """A job of `kind` for the tenant, due now (or in `delay` s), for work kept in a table
    of its own (WeCom events, contact ways, transfers): a queued one due by then is
    enough; a running one may have read past the new work, so it does not count. A new
    one is enqueued when `session` commits."""
    horizon = utcnow() + timedelta(seconds=delay or 0)
    queued = session.scalar(
        select(Job)
        .where(
            Job.tenant_id == tenant_id,
            Job.kind == kind,
            Job.state == "queued",
            Job.heartbeat_at <= horizon,
        )
        .limit(1)
    )
    if queued is not None:
        return queued
    job, _ = start(session, tenant_id=tenant_id, kind=kind, delay=delay)
    return job


def job_url(job_id: str) -> str:
    return f"/api/v1/jobs/{job_id}"


# --- enqueue after commit ----------------------------------------------------------------


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    queue = session.info.get(QUEUE_KEY)
    if queue is None:
        log.warning("jobs committed without a queue; run them with a worker's recovery")
        return
    for job_id, delay in pending:
        try:
            queue.enqueue(job_id, delay=delay)
        except Exception:  # the queue is down: the job stays queued; recovery re-sends it
            log.exception("could not enqueue job", extra={"job_id": job_id})


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


# --- helpers -------------------------------------------------------------------------------


@overload
def _clean_key(key: str) -> str: ...
@overload
def _clean_key(key: None) -> None: ...
def _clean_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            "Idempotency-Key must be 1-128 characters.",
            errors={"Idempotency-Key": ["1-128 characters, one per logical request."]},
        )
    return key


def find_by_key(
    session: Session,
    tenant_id: str,
    started_by: str | None,
    key: str,
    *,
    kind: str | None = None,
    subject: str | None = None,
) -> Job | None:
    """The job this starter already started with this Idempotency-Key, if any; given the
    kind and subject, a key used for other work is refused (422)."""
    key = _clean_key(key)
    starter = Job.started_by.is_(None) if started_by is None else Job.started_by == started_by
    job = session.scalar(
        select(Job).where(Job.tenant_id == tenant_id, starter, Job.idempotency_key == key)
    )
    return _same_work(job, kind, subject) if job is not None and kind is not None else job


def _same_work(job: Job, kind: str, subject: str | None) -> Job:
    if job.kind != kind or job.subject != subject:
        raise InvalidInput(
            "This Idempotency-Key was used to start other work; use a new key.",
            errors={"Idempotency-Key": [f"Already used for job {job.id} ({job.kind})."]},
        )
    return job
