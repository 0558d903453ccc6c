"""Which job queues the suite runs on: SQLite (huey's SqliteHuey) always, Redis when
GUIDEAPP_TEST_REDIS_URL is set (CI: must, like PostgreSQL in tests/databases.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from guideapp.config import PROJECT_ROOT

from tests.databases import IN_CI

REDIS_URL = os.environ.get("GUIDEAPP_TEST_REDIS_URL")
SKIP_REASON = (
    "Redis queue tests skipped: set GUIDEAPP_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379/5 "
    "(CI always sets it)"
)


def queue_backends() -> list:
    if REDIS_URL:
        redis = pytest.param("redis", marks=pytest.mark.redis)
    elif IN_CI:
        redis = "redis"  # queue_url fails loudly: CI must not skip Redis
    else:
        redis = pytest.param("redis", marks=pytest.mark.skip(reason=SKIP_REASON))
    return ["sqlite", redis]


def queue_url(backend: str, tmp_path) -> str:
    """A queue URL of `backend`; each test also gets a queue name of its own."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    if not REDIS_URL:
        pytest.fail("CI runs every queue test on Redis too: GUIDEAPP_TEST_REDIS_URL unset")
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis at {REDIS_URL} unreachable: {error}")
    return REDIS_URL


def start_worker(
    database_url: str, jobs_url: str, name: str, *modules: str, **env
) -> subprocess.Popen:
    """A real `flask jobs worker` process (one thread) on `jobs_url`, with a short lease and
    quick polls so kill-and-resume tests finish in seconds; `env` adds GUIDEAPP_* settings
    (e.g. UPLOAD_DIR=...). Started in its own session: a test can SIGKILL it alone."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "GUIDEAPP_DATABASE_URL": database_url,
        "GUIDEAPP_JOBS_URL": jobs_url,
        "GUIDEAPP_JOBS_NAME": name,
        "GUIDEAPP_JOBS_LEASE": "2",
        "GUIDEAPP_JOBS_RECOVER_EVERY": "0.5",
        "GUIDEAPP_JOBS_POLL_MAX": "0.2",
        "GUIDEAPP_LOG_LEVEL": "WARNING",
        **{f"GUIDEAPP_{key}": str(value) for key, value in env.items()},
    }
    imports = [arg for module in modules for arg in ("--import", module)]
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker", "--workers", "1"]
        + imports,
        cwd=PROJECT_ROOT,
        env=environment,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
