"""The one module that knows huey: the queue carries job ids, workers run them.

SqliteHuey (a file under instance/) is the embedded default: `make run` needs no other
service. RedisHuey when the URL says redis:// (production, CI). Messages carry only a
job's id (and, for a retry, the attempt it retries): the jobs table is the truth, so a
lost or duplicated message costs nothing (recovery re-sends lost ones; duplicates find
the job taken or finished).
"""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.consumer import Consumer

from guideapp.jobs.runner import Runner, Settings

log = logging.getLogger("guideapp.jobs")

TASK_NAME = "guideapp.job"


def make_huey(url: str, name: str):
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path), results=False)
    raise ValueError(f"GUIDEAPP_JOBS_URL must be redis://... or sqlite:///path, not {url!r}")


class JobQueue:
    """One app's queue: enqueue job ids, run them (worker threads or work_off), recover."""

    def __init__(self, *, url: str, name: str, sessionmaker, settings: Settings, app=None):
        self.url, self.name = url, name
        self.settings = settings
        self.runner = Runner(sessionmaker, settings, enqueue=self.enqueue)
        self._app = app
        self._huey: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

    @property
    def huey(self):
        """Made on first use: an app that never starts a job never opens the queue."""
        if self._huey is None:
            with self._lock:
                if self._huey is None:
                    huey = make_huey(self.url, self.name)
                    self._task = huey.task(name=TASK_NAME)(self._execute)
                    self._huey = huey
        return self._huey

    @property
    def backend(self) -> str:
        return "sqlite" if self.url.startswith("sqlite:") else "redis"

    def _execute(self, job_id: str, retry_of: int | None = None) -> None:
        with self._app.app_context() if self._app is not None else nullcontext():
            self.runner.run(job_id, retry_of=retry_of)

    # --- putting work on the queue -------------------------------------------------------

    def enqueue(self, job_id: str, *, delay: float | None = None, retry_of=None) -> None:
        kwargs = {"retry_of": retry_of} if retry_of is not None else {}
        self.huey  # noqa: B018  (makes the task)
        if delay:
            self._task.schedule(args=(job_id,), kwargs=kwargs, delay=delay)
        else:
            self._task(job_id, **kwargs)

    def recover(self) -> int:
        """Re-send jobs whose worker died or whose message was lost (see Runner.orphans)."""
        found = self.runner.orphans()
        for job_id, attempt in found:
            self.enqueue(job_id, retry_of=attempt)
        if found:
            log.warning("re-enqueued orphaned jobs", extra={"job_ids": [j for j, _ in found]})
        return len(found)

    def pending_count(self) -> int:
        return self.huey.pending_count() + self.huey.scheduled_count()

    def flush(self) -> None:
        """Drop every message of this queue (tests, and `jobs flush` after an incident)."""
        self.huey.flush()

    # --- running it ------------------------------------------------------------------------

    def work_off(self, max_messages: int = 10_000) -> int:
        """Run every message due now in this thread, until the queue is empty (tests, and
        one-off runs without a worker). Returns how many messages were executed."""
        executed = 0
        while executed < max_messages:
            for task in self.huey.read_schedule():
                self.huey.enqueue(task)
            if self.huey.pending_count() == 0:  # (Redis would block on an empty queue)
                return executed
            task = self.huey.dequeue()
            if task is None:
                return executed
            if self.huey.ready_to_run(task):
                executed += 1
            self.huey.execute(task)  # a task not yet due goes (back) on the schedule
        return executed

    def consumer(self, workers: int, *, poll_max_seconds: float = 1.0) -> Consumer:
        return Consumer(
            self.huey,
            workers=workers,
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            backoff=1.5,
            max_delay=poll_max_seconds,
            graceful_signal="TERM",  # supervisors stop with SIGTERM: finish the unit first
        )

    def run_worker(
        self, workers: int, *, recover_every: float, poll_max_seconds: float = 1.0
    ) -> None:
        """Block running `workers` threads until SIGTERM (running jobs pause at their next
        unit and go back on the queue) or SIGINT (at once); re-send orphans first and then
        every `recover_every` seconds."""
        consumer = self.consumer(workers, poll_max_seconds=poll_max_seconds)
        self.runner.should_stop = consumer.stop_flag.is_set  # pause jobs at their next unit
        stop = threading.Event()

        def recover_loop():
            while not stop.is_set():
                try:
                    self.recover()
                except Exception:
                    log.exception("job recovery failed; trying again later")
                stop.wait(recover_every)

        recovery = threading.Thread(target=recover_loop, name="job-recovery", daemon=True)
        recovery.start()
        try:
            consumer.run()
        finally:
            stop.set()
