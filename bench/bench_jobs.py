"""Enqueue-to-start latency of a job on the SQLite and Redis queues (PostgreSQL database).

A real worker process (`flask --app wsgi jobs worker`) runs month-close jobs that arrive one at
a time at random moments, the queue idle in between (the common case: a person presses a
button). Latency is the job's started_at minus its created_at: the commit, the queue, the
worker's poll and its claim. Beside it, measured in the same run: the bare cost of a no-op
job run inline (start it, run it, commit: the job machinery without any queue), which is
what the queue's latency adds to.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid

from sqlalchemy.orm import Session

from bench.common import emit, migrate, percentiles, scratch_postgres
from guideapp import create_app, jobs
from guideapp.config import PROJECT_ROOT, Config
from guideapp.db import make_engine, transaction
from guideapp.org.service import create_tenant

REDIS_URL = os.environ.get("GUIDEAPP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")


@jobs.kind("bench.noop", unit="things")
def _noop(ctx: jobs.JobContext) -> dict:
    with ctx.unit():
        ctx.progress(1, 1)
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_jobs", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="15 jobs per queue instead of 40")
    args = parser.parse_args(argv)
    samples = 15 if args.quick else 40
    random.seed(15)
    figures = {}
    with scratch_postgres("bench_jobs") as url, tempfile.TemporaryDirectory() as tmp:
        migrate(url)
        engine = make_engine(url)
        with Session(engine) as session, transaction(session):
            tenant_id = create_tenant(session, slug="bench", name="Bench", timezone="UTC").id
        engine.dispose()
        months = iter(f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(2 * samples + 10))
        figures["inline_noop_ms"] = percentiles(_inline(url, tenant_id, samples))
        for backend, jobs_url in (("sqlite", f"sqlite:///{tmp}/jobs.db"), ("redis", REDIS_URL)):
            figures[f"{backend}_start_ms"] = percentiles(
                _latencies(url, jobs_url, tenant_id, months, samples)
            )
    sqlite, redis = figures["sqlite_start_ms"]["p50"], figures["redis_start_ms"]["p50"]
    for name, figure in figures.items():
        print(f"{name:>16}: p50 {figure['p50']} ms  p95 {figure['p95']} ms")
    inline = figures["inline_noop_ms"]
    emit(
        "jobs",
        title="Jobs: enqueue-to-start latency (one worker, idle queue, PostgreSQL)",
        target="a queued job starts within a second on either queue",
        met=bool(sqlite is not None and redis is not None and max(sqlite, redis) < 1000),
        comparison=(
            f"p50 {sqlite} ms / p95 {figures['sqlite_start_ms']['p95']} ms on SQLite (the "
            f"worker polls, backing off to 1 s when idle: GUIDEAPP_JOBS_POLL_MAX) vs p50 "
            f"{redis} ms / p95 {figures['redis_start_ms']['p95']} ms on Redis (a blocking "
            f"pop); a no-op job run inline, start to commit with no queue: p50 "
            f"{inline['p50']} ms / p95 {inline['p95']} ms"
        ),
        jobs_per_queue=samples,
        **figures,
    )
    return 0


def _inline(url: str, tenant_id: str, samples: int) -> list[float]:
    """Start a no-op job and run it in this process, in one transaction: no queue, no worker."""
    from guideapp.jobs import run_inline

    app = create_app(Config(DATABASE_URL=url, LOG_LEVEL="ERROR"))
    maker = app.extensions["guideapp"]["sessionmaker"]
    timings = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            with maker() as session, transaction(session):
                job, _ = jobs.start(session, tenant_id=tenant_id, kind="bench.noop", enqueue=False)
                run_inline(session, job)
            timings.append((time.perf_counter() - started) * 1000)
        return timings
    finally:
        app.extensions["guideapp"]["engine"].dispose()


def _latencies(url: str, jobs_url: str, tenant_id: str, months, samples: int) -> list[float]:
    from guideapp.commissions.settlement import start_settlement
    from guideapp.jobs.models import Job

    name = f"bench-{uuid.uuid4().hex}"
    app = create_app(Config(DATABASE_URL=url, JOBS_URL=jobs_url, JOBS_NAME=name, LOG_LEVEL="ERROR"))
    maker = app.extensions["guideapp"]["sessionmaker"]
    env = {
        **os.environ,
        "GUIDEAPP_DATABASE_URL": url,
        "GUIDEAPP_JOBS_URL": jobs_url,
        "GUIDEAPP_JOBS_NAME": name,
        "GUIDEAPP_LOG_LEVEL": "ERROR",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker", "--workers", "1"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )

    def run_one() -> float:
        with maker() as session, transaction(session):
            job, _ = start_settlement(session, tenant_id=tenant_id, month=next(months))
        deadline = time.monotonic() + 120
        while True:
            with maker() as session:
                done = session.get(Job, job.id)
            if done.state in ("succeeded", "failed", "cancelled"):
                assert done.state == "succeeded", done.error
                return (done.started_at - done.created_at).total_seconds() * 1000
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job.id} still {done.state}")
            time.sleep(0.01)

    try:
        run_one()  # the worker is up
        latencies = []
        for _ in range(samples):
            time.sleep(random.uniform(0.0, 1.5))
            latencies.append(run_one())
        return latencies
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        app.extensions["guideapp"]["jobs"].flush()
        app.extensions["guideapp"]["engine"].dispose()


if __name__ == "__main__":
    sys.exit(main())
