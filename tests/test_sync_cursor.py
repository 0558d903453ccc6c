"""Rule 1: a transaction that commits late is never skipped by a pull in between (PostgreSQL)."""

import threading
import time

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.auth.scope import Actor
from guideapp.db import commit, make_engine, transaction
from guideapp.demo import load_demo
from guideapp.members import service as members
from guideapp.migrations import alembic_config
from guideapp.org.models import Staff
from guideapp.sync import service as sync
from guideapp.changelog import stamp_pending_changes
from tests.conftest import FIXTURES, GUIDE, MANAGER
from tests.databases import POSTGRES_URL, scratch_database


@pytest.mark.skipif(
    not POSTGRES_URL and not __import__("os").environ.get("CI"),
    reason="needs GUIDEAPP_TEST_POSTGRES_URL: SQLite runs one writer at a time",
)
def test_out_of_order_commits_are_never_missed(tmp_path_factory):
    with scratch_database("postgres", tmp_path_factory) as url:
        command.upgrade(alembic_config({}, url=url), "head")
        engine = make_engine(url)
        with Session(engine) as s, transaction(s):
            load_demo(s, FIXTURES)
        with Session(engine, expire_on_commit=False) as s:
            manager = Actor.for_staff(s.scalar(select(Staff).where(Staff.phone == MANAGER)))
            guide = Actor.for_staff(s.scalar(select(Staff).where(Staff.phone == GUIDE)))
            first_pull = sync.pull(
                s, actor=guide, last_pulled_at=None, schema_version=1, page_size=10_000
            )
            member_ids = sorted(r["id"] for r in first_pull["changes"]["members"]["updated"])
        cursor0 = first_pull["timestamp"]

        # T1 starts first and takes its sequence number, but commits last.
        early = Session(engine)
        members.add_note(early, actor=manager, member_id=member_ids[0], body="T1, slow")
        stamp_pending_changes(early)  # counter row now locked by T1

        late_done = threading.Event()

        def late_writer():
            with Session(engine) as late:
                members.add_note(late, actor=manager, member_id=member_ids[1], body="T2, fast")
                commit(late)  # waits for T1's counter lock: it cannot commit first
            late_done.set()

        thread = threading.Thread(target=late_writer)
        thread.start()
        time.sleep(0.5)
        assert not late_done.is_set(), "T2 must wait for T1: commit order = counter order"
        with Session(engine) as reader:  # a pull while T1 is in flight
            between = sync.pull(reader, actor=guide, last_pulled_at=cursor0, schema_version=1)
        assert between["timestamp"] == cursor0  # never beyond an invisible change
        early.commit()
        early.close()
        thread.join(timeout=10)
        assert late_done.is_set()
        with Session(engine) as reader:
            after = sync.pull(
                reader, actor=guide, last_pulled_at=between["timestamp"], schema_version=1
            )
        bodies = sorted(n["body"] for n in after["changes"]["member_notes"]["updated"])
        assert bodies == ["T1, slow", "T2, fast"]
        assert after["timestamp"] == cursor0 + 2
        engine.dispose()
