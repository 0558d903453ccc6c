"""Which databases the suite runs on: SQLite always, PostgreSQL when configured (CI: must)."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import make_url

from guideapp.migrations import scratch_postgres_database

POSTGRES_URL = os.environ.get("GUIDEAPP_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SKIP_REASON = (
    "PostgreSQL tests skipped: set GUIDEAPP_TEST_POSTGRES_URL, e.g. "
    "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def backends() -> list:
    if POSTGRES_URL:
        postgres = pytest.param("postgres", marks=pytest.mark.postgres)
    elif IN_CI:
        postgres = "postgres"  # the fixture fails loudly: CI must not skip PostgreSQL
    else:
        postgres = pytest.param("postgres", marks=pytest.mark.skip(reason=SKIP_REASON))
    return ["sqlite", postgres]


def require_postgres_url() -> str:
    if not POSTGRES_URL:
        pytest.fail("CI runs every database test on PostgreSQL: GUIDEAPP_TEST_POSTGRES_URL unset")
    return POSTGRES_URL


@contextmanager
def scratch_database(backend: str, tmp_path_factory):
    """A brand-new empty database of `backend`, dropped afterwards; yields its URL."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("db") / f"{uuid.uuid4().hex}.db"
        yield f"sqlite:///{path}"
        return
    base = make_url(require_postgres_url())
    with scratch_postgres_database(require_postgres_url(), base.database) as url:
        yield url


def run_in_threads(target, count: int) -> None:
    """Start `count` threads on `target` and wait for all (targets meet at their own barrier)."""
    import threading

    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
