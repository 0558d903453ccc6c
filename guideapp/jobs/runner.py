"""Running one job: claim it, run its units of work, record how it ended.

Every unit of work is one transaction that also locks the job's row and saves its
checkpoint and progress, so whatever a worker finished is recorded with the work itself:
a worker killed mid-unit loses only that unit (rolled back), and the job runs again from
its last checkpoint. The row lock and the attempt number make two runners of the same job
take turns: the newer one wins, the older one stops at its next unit (Superseded).

No huey here: the queue (queue.py) hands this module job ids and schedules its retries.
"""

from __future__ import annotations

import logging
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterator

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session

from guideapp.logs import log_context
from guideapp.db import transaction, utcnow
from guideapp.errors import DomainError
from guideapp.jobs.kinds import KINDS, UNIT_HOOKS
from guideapp.jobs.models import ACTIVE, FINISHED, Job

log = logging.getLogger("guideapp.jobs")

MAX_RETRY_DELAY_SECONDS = 300.0


@dataclass(frozen=True)
class Settings:
    max_attempts: int = 5
    retry_delay_seconds: float = 2.0  # doubled after each failed attempt, up to 5 minutes
    lease_seconds: float = 300.0

    @classmethod
    def from_config(cls, config) -> Settings:
        return cls(
            max_attempts=int(config.get("JOBS_MAX_ATTEMPTS", 5)),
            retry_delay_seconds=float(config.get("JOBS_RETRY_DELAY_SECONDS", 2.0)),
            lease_seconds=float(config.get("JOBS_LEASE_SECONDS", 300.0)),
        )

    def retry_delay(self, attempt: int) -> float:
        return min(self.retry_delay_seconds * 2 ** max(attempt - 1, 0), MAX_RETRY_DELAY_SECONDS)


class Cancelled(Exception):
    """Someone asked the job to stop; it stops before its next unit of work."""


class Superseded(Exception):
    """Another runner took the job over (this one was presumed dead); this one stops."""


class Paused(Exception):
    """The worker is shutting down gracefully: the job goes back on the queue as it is."""


# A handler that catches its units' failures lets these through: they stop the job itself.
STOPS = (Cancelled, Superseded, Paused)


def is_transient(error: BaseException) -> bool:
    """Errors worth a retry: the database went away or was busy, not a rule or a bug."""
    if isinstance(error, (OperationalError, DisconnectionError)):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


def lock_job(session: Session, job_id: str) -> Job | None:
    return session.scalar(select(Job).where(Job.id == job_id).with_for_update())


class JobContext:
    """What a handler sees: the job's parameters, its checkpoint, progress and units."""

    def __init__(self, job: Job, attempt: int):
        self.job_id = job.id
        self.kind = job.kind
        self.tenant_id = job.tenant_id
        self.started_by = job.started_by
        self.params = dict(job.params or {})
        self.checkpoint = dict(job.checkpoint or {})
        self.attempt = attempt
        self.done = job.progress_done
        self.total = job.progress_total
        self.units = 0  # units finished by this run

    def progress(self, done: int, total: int | None = None) -> None:
        """Progress in the job's own unit, saved with the current unit of work."""
        self.done = done
        if total is not None:
            self.total = total

    def unit(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def reading(self):  # pragma: no cover - overridden
        """A session for reads outside any unit: work that writes nothing to the database
        and can simply be redone (an export builds its file here), without holding the
        job's row lock meanwhile, so a cancel or a progress read never waits for it."""
        raise NotImplementedError

    def keep_file(
        self, *, key: str, filename: str, content_type: str, size: int, ascii_filename: str
    ) -> None:
        """The file this job produced (in the app's storage), saved with the current unit;
        `GET /api/v1/jobs/<id>/download` sends it once the job has succeeded, named
        `filename` (any script) with `ascii_filename` for clients without RFC 5987."""
        self.checkpoint["file"] = {
            "key": key,
            "filename": filename,
            "ascii_filename": ascii_filename,
            "content_type": content_type,
            "size": size,
        }

    def _save(self, job: Job) -> None:
        job.checkpoint = dict(self.checkpoint)
        job.progress_done, job.progress_total = self.done, self.total
        job.heartbeat_at = utcnow()


class WorkerContext(JobContext):
    """Each unit is its own transaction on a fresh session (a worker, or the CLI)."""

    def __init__(self, job: Job, attempt: int, sessionmaker, should_stop=None, on_unit=None):
        super().__init__(job, attempt)
        self._sessionmaker = sessionmaker
        self._should_stop = should_stop or (lambda: False)
        self._on_unit = on_unit

    @contextmanager
    def unit(self) -> Iterator[Session]:
        if self._should_stop():
            raise Paused()
        with self._sessionmaker() as session, transaction(session):
            job = lock_job(session, self.job_id)
            if job is None or job.state != "running" or job.attempts != self.attempt:
                raise Superseded()
            if job.cancel_requested:
                raise Cancelled()
            yield session
            self._save(job)
        self.units += 1
        for hook in UNIT_HOOKS:
            hook(self)
        if self._on_unit is not None:
            self._on_unit(self)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._sessionmaker() as session:
            try:
                yield session
            finally:
                session.rollback()  # it only read


class InlineContext(JobContext):
    """`?wait=true`: the units run in the caller's own transaction, committed as one."""

    def __init__(self, job: Job, session: Session):
        super().__init__(job, job.attempts)
        self._job, self._session = job, session

    @contextmanager
    def unit(self) -> Iterator[Session]:
        yield self._session
        self._save(self._job)
        self._session.flush()
        self.units += 1

    @contextmanager
    def reading(self) -> Iterator[Session]:
        yield self._session


def run_inline(session: Session, job: Job) -> dict:
    """Run a job to the end inside `session`'s transaction (the caller commits).

    A DomainError propagates, so the caller's transaction (the job row included) rolls
    back and the caller answers as it always did.
    """
    kind = KINDS.get(job.kind)
    if kind is None:
        raise RuntimeError(f"no handler registered for job kind {job.kind!r}")
    job.state, job.attempts = "running", job.attempts + 1
    job.started_at = job.started_at or utcnow()
    result = kind.handler(InlineContext(job, session))
    job.state, job.result, job.error = "succeeded", result, None
    job.finished_at = job.heartbeat_at = utcnow()
    session.flush()
    return result


@dataclass(frozen=True)
class Retry:
    delay: float
    retry_of: int


class Runner:
    """Runs jobs by id in fresh sessions from `sessionmaker`; `enqueue(job_id, delay=...,
    retry_of=...)` puts a retry on the queue (None: the caller retries, e.g. the CLI)."""

    def __init__(
        self,
        sessionmaker,
        settings: Settings,
        enqueue: Callable | None = None,
        on_unit: Callable | None = None,
    ):
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.enqueue = enqueue
        self.on_unit = on_unit  # fn(ctx) after each committed unit (the CLI's progress bar)
        # Set by a worker: true once it is stopping; jobs then pause at their next unit.
        self.should_stop: Callable[[], bool] = lambda: False

    # --- the one entry point -------------------------------------------------------------

    def run(self, job_id: str, retry_of: int | None = None) -> Retry | None:
        """Run the job once; a Retry tells when to run it again (already enqueued when
        this runner has a queue)."""
        claimed = self._claim(job_id, retry_of)
        if claimed is None:
            return None
        job_view, attempt = claimed
        ctx = WorkerContext(
            job_view, attempt, self.sessionmaker, self.should_stop, on_unit=self.on_unit
        )
        try:
            with log_context(job_id=job_id, job_kind=job_view.kind):  # on every line it logs
                result = KINDS[job_view.kind].handler(ctx)
        except Superseded:
            log.info("job superseded", extra={"job_id": job_id, "attempt": attempt})
            return None
        except Paused:
            self._pause(job_id, attempt)
            log.info("job paused for shutdown", extra={"job_id": job_id, "done": ctx.done})
            return None
        except Cancelled:
            self._end(job_id, attempt, state="cancelled", error=None)
            log.info("job cancelled", extra={"job_id": job_id, "done": ctx.done})
            return None
        except DomainError as error:
            message = _domain_message(error)
            self._end(job_id, attempt, state="failed", error=message, detail=_trace(error))
            log.info("job failed", extra={"job_id": job_id, "error": message})
            return None
        except Exception as error:
            if is_transient(error):
                return self._retry_or_give_up(job_view, attempt, error)
            log.exception("job crashed", extra={"job_id": job_id, "kind": job_view.kind})
            message = (
                f"The job failed on our side ({type(error).__name__}); it is logged under "
                f"job {job_id}. Start it again, or tell support if it fails again."
            )
            self._end(job_id, attempt, state="failed", error=message, detail=_trace(error))
            return None
        self._end(job_id, attempt, state="succeeded", result=result, error=None)
        log.info("job succeeded", extra={"job_id": job_id, "kind": job_view.kind})
        return None

    # --- claiming ----------------------------------------------------------------------------

    def _claim(self, job_id: str, retry_of: int | None):
        """Take the job if nobody alive holds it; (a detached copy, the attempt) or None."""
        now = utcnow()
        lease = timedelta(seconds=self.settings.lease_seconds)
        try:
            with self.sessionmaker() as session, transaction(session):
                job = lock_job(session, job_id)
                if job is None:
                    log.warning("job not found; message dropped", extra={"job_id": job_id})
                    return None
                if job.state in FINISHED:
                    return None
                if job.cancel_requested:
                    job.state, job.finished_at = "cancelled", now
                    return None
                held = job.state == "running" and job.attempts != retry_of
                if held and job.heartbeat_at > now - lease:
                    return None  # a live runner has it; this is a duplicate message
                if job.attempts >= job.max_attempts:
                    job.state, job.finished_at = "failed", now
                    job.error = (
                        f"Gave up after {job.attempts} attempts: the worker running it "
                        f"stopped or the database was unreachable each time. "
                        + (f"Last error: {job.error}" if job.error else "Start it again.")
                    )
                    return None
                if job.kind not in KINDS:
                    job.state, job.finished_at = "failed", now
                    job.error = f"This server has no job kind {job.kind!r}; it cannot run it."
                    return None
                job.state, job.attempts = "running", job.attempts + 1
                job.started_at = job.started_at or now
                job.heartbeat_at = now
                session.flush()
                session.expunge(job)
                return job, job.attempts
        except Exception as error:
            if not is_transient(error):
                raise
            # The database is away: we cannot even record it. Try again later.
            log.warning("cannot claim job: %s", error, extra={"job_id": job_id})
            delay = self.settings.retry_delay(1)
            self._send_retry(job_id, delay, retry_of)
            return None

    # --- ending ------------------------------------------------------------------------------

    def _end(self, job_id: str, attempt: int, *, state: str, detail=None, **values) -> bool:
        with self.sessionmaker() as session, transaction(session):
            job = lock_job(session, job_id)
            if job is None or job.attempts != attempt or job.state != "running":
                return False  # superseded meanwhile
            job.state = state
            job.finished_at = job.heartbeat_at = utcnow()
            job.error_detail = detail
            for name, value in values.items():
                setattr(job, name, value)
            return True

    def _pause(self, job_id: str, attempt: int) -> None:
        """Back to the queue from its checkpoint; a pause does not use up an attempt."""
        with self.sessionmaker() as session, transaction(session):
            job = lock_job(session, job_id)
            if job is None or job.attempts != attempt or job.state != "running":
                return
            job.state, job.attempts, job.heartbeat_at = "queued", attempt - 1, utcnow()
        if self.enqueue is not None:
            self.enqueue(job_id)

    def _retry_or_give_up(self, job_view: Job, attempt: int, error: Exception) -> Retry | None:
        job_id = job_view.id
        reason = _transient_reason(error)
        log.warning("job hit a transient error", extra={"job_id": job_id, "error": str(error)})
        if attempt >= job_view.max_attempts:
            message = (
                f"Gave up after {attempt} attempts: {reason}. "
                "Start the job again once the cause is fixed."
            )
            try:
                self._end(job_id, attempt, state="failed", error=message, detail=_trace(error))
            except Exception as again:
                if not is_transient(again):
                    raise
                # Still unreachable: the retry message finds the attempts used up and fails it.
                self._send_retry(job_id, self.settings.retry_delay(attempt), attempt)
            return None
        delay = self.settings.retry_delay(attempt)
        message = (
            f"{reason}; trying again in {delay:g} s (attempt {attempt + 1} of "
            f"{job_view.max_attempts})."
        )
        try:
            with self.sessionmaker() as session, transaction(session):
                job = lock_job(session, job_id)
                if job is None or job.attempts != attempt or job.state != "running":
                    return None
                job.state, job.error, job.error_detail = "queued", message, _trace(error)
                job.heartbeat_at = utcnow() + timedelta(seconds=delay)
        except Exception as again:
            if not is_transient(again):
                raise
            # The record stays "running"; the retry message is allowed to take it over.
        return self._send_retry(job_id, delay, attempt)

    def _send_retry(self, job_id: str, delay: float, retry_of: int | None) -> Retry:
        retry = Retry(delay=delay, retry_of=retry_of or 0)
        if self.enqueue is not None:
            self.enqueue(job_id, delay=delay, retry_of=retry.retry_of)
        return retry

    # --- recovery ----------------------------------------------------------------------------

    def orphans(self) -> list[tuple[str, int]]:
        """Jobs queued or running with no sign of life for the lease: their message was lost
        or their worker died. Marked as seen now; (id, attempt) to enqueue again."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self.settings.lease_seconds)
        with self.sessionmaker() as session, transaction(session):
            stale = session.scalars(
                select(Job)
                .where(Job.state.in_(ACTIVE), Job.heartbeat_at < cutoff)
                .order_by(Job.heartbeat_at)
                .limit(1000)
                .with_for_update(skip_locked=True)
            ).all()
            found = []
            for job in stale:
                job.heartbeat_at = now
                found.append((job.id, job.attempts))
        return found


def run_to_end(runner: Runner, job_id: str, *, sleep=time.sleep) -> None:
    """Run a job here and now, retrying transient errors in-process (the CLI's inline mode:
    give it a Runner without a queue, so retries are not also enqueued)."""
    retry_of = None
    for _ in range(runner.settings.max_attempts + 1):
        retry = runner.run(job_id, retry_of=retry_of)
        if retry is None:
            return
        sleep(retry.delay)
        retry_of = retry.retry_of


def _domain_message(error: DomainError) -> str:
    details = "; ".join(
        f"{field}: {message}"
        for field, messages in (error.errors or {}).items()
        for message in (messages if isinstance(messages, list) else [messages])
    )
    return f"{error.message} ({details})" if details else error.message


def _transient_reason(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    first = text[0][:200] if text else type(error).__name__
    return f"the database was unreachable or busy ({first})"


def _trace(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))
