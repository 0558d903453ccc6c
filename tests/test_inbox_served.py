"""The inbox as a server runs it: no test transaction, the login check and the change
version in one autocommit round trip on a pooled connection (db.HotRead), pages kept per
process. Each test gets a scratch database with the demo loaded, on both backends."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from guideapp import create_app, db
from guideapp.auth import tokens
from guideapp.db import transaction, utcnow
from guideapp.demo import load_demo
from guideapp.migrations import alembic_config
from tests.conftest import FIXTURES, GUIDE, MANAGER, ApiClient, make_config
from tests.databases import backends, scratch_database
from tests.factories import staff_by_phone

INBOX = "/api/v1/inbox"


@contextmanager
def _served_app(backend: str, tmp_path_factory):
    """An app on its own engine (as under gunicorn) over a freshly migrated demo database."""
    with scratch_database(backend, tmp_path_factory) as url:
        command.upgrade(alembic_config({}, url=url), "head")
        app = create_app(make_config(_Url(url)))
        engine = app.extensions["guideapp"]["engine"]
        with Session(engine) as session, transaction(session):
            load_demo(session, FIXTURES)
        yield app, ApiClient(app.test_client())
        engine.dispose()


@pytest.fixture(params=backends())
def served(request, tmp_path_factory):
    with _served_app(request.param, tmp_path_factory) as app_and_api:
        yield app_and_api


@pytest.fixture(params=backends()[1:])  # a server connection to drop: PostgreSQL only
def served_postgres(request, tmp_path_factory):
    with _served_app(request.param, tmp_path_factory) as app_and_api:
        yield app_and_api


class _Url:
    def __init__(self, url):
        self.url = url


def _store_task_for_guide(app, api) -> str:
    with Session(app.extensions["guideapp"]["engine"]) as session:
        guide_id = staff_by_phone(session, GUIDE).id
    now = utcnow()
    created = api.post(
        MANAGER,
        "/api/v1/tasks",
        json={
            "title": "回访",
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "due_at": (now + timedelta(days=1)).isoformat(),
            "assignee_ids": [guide_id],
        },
    )
    assert created.status_code == 201, created.get_json()
    return created.get_json()[0]["id"]


def test_kept_page_304_then_a_committed_change_then_logout(served):
    app, api = served
    first = api.get(GUIDE, INBOX)
    assert first.status_code == 200, first.get_json()
    etag = first.headers["ETag"]
    again = api.client.get(INBOX, headers=api.headers(GUIDE, **{"If-None-Match": etag}))
    assert again.status_code == 304

    task_id = _store_task_for_guide(app, api)  # another request, committed
    changed = api.client.get(INBOX, headers=api.headers(GUIDE, **{"If-None-Match": etag}))
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert task_id in [item["task"]["id"] for item in changed.get_json()["items"]]

    headers = api.headers(GUIDE)
    assert api.client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    gone = api.client.get(INBOX, headers=headers)
    assert gone.status_code == 401 and "ended" in gone.get_json()["message"]


def test_a_leaver_is_refused_at_once_though_the_page_is_kept(served):
    app, api = served
    assert api.get(GUIDE, INBOX).status_code == 200
    with Session(app.extensions["guideapp"]["engine"]) as session, transaction(session):
        session.execute(text("UPDATE staff SET state = 'left' WHERE phone = :p"), {"p": GUIDE})
    assert api.get(GUIDE, INBOX).status_code == 401


def test_a_dropped_database_connection_costs_one_503_then_reconnects(served_postgres):
    app, api = served_postgres
    engine = app.extensions["guideapp"]["engine"]
    assert api.get(GUIDE, INBOX).status_code == 200
    _drop_app_connections(engine)
    failed = api.get(GUIDE, INBOX)  # in steady use, so not pinged: the broken one answers
    assert failed.status_code == 503 and "retry" in failed.get_json()["message"]
    assert api.get(GUIDE, INBOX).status_code == 200  # the pool replaced it


def test_an_idle_connection_is_pinged_and_replaced_without_an_error(served_postgres, monkeypatch):
    app, api = served_postgres
    engine = app.extensions["guideapp"]["engine"]
    assert api.get(GUIDE, INBOX).status_code == 200
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout counts as idle
    _drop_app_connections(engine)
    assert api.get(GUIDE, INBOX).status_code == 200


def _drop_app_connections(engine) -> None:
    """Terminate, from outside the app, the server side of every connection its pool holds."""
    admin = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        dropped = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()
    assert dropped >= 1


def test_verified_tokens_are_kept_but_still_expire(monkeypatch):
    now = utcnow()
    token = tokens.issue_access_token(
        secret="s" * 32, staff_id="a", tenant_id="t", session_id="x", now=now, ttl_seconds=60
    )
    assert tokens.read_access_token(token, secret="s" * 32)["sub"] == "a"
    assert tokens.read_access_token(token, secret="t" * 32) is None  # another key: checked

    class _Later:
        @staticmethod
        def time():
            return now.timestamp() + 61

    monkeypatch.setattr(tokens, "time", _Later)
    assert tokens.read_access_token(token, secret="s" * 32) is None
