"""Which job queues the suite runs on: SQLite (huey's SqliteHuey) always, Redis when
GUIDEAPP_TEST_REDIS_URL is set (CI: must, like PostgreSQL in tests/databases.py)."""

from __future__ import annotations

import os

import pytest

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
