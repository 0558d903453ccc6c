"""Cursors: a commit's change-log rows carry the sequence number it took from the counter,
so a pull from the cursor before it returns the change (both backends); and a transaction
that commits late is never skipped by a pull in between (rule 1, PostgreSQL)."""

import threading
import time

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.policy.actor import Actor
from guideapp.db import commit, make_engine, transaction
from guideapp.demo import load_demo
from guideapp.members import service as members
from guideapp.migrations import alembic_config
from guideapp.org.models import Staff
from guideapp.sync import service as sync
from guideapp.changelog import ChangeLogEntry, SyncCounter, stamp_pending_changes
from guideapp.members.models import Member, MemberTag
from guideapp.tasks.models import Task
from tests.conftest import FIXTURES, GUIDE, HQ, MANAGER
from tests.databases import POSTGRES_URL, scratch_database
from tests.factories import member_of, staff_by_phone, store_by_code
from tests.sync_phone import Phone

COLLEAGUE = "13913775684"  # another guide of SH001


# Each case: (whose phone pulls, prepare(api, session) -> write() -> (table, record ids)).
# Notes are stamped row by row (log_change); a transfer's tags and a campaign's tasks are
# stamped by INSERT ... SELECT (log_changes_from_select): both paths are covered.
def _a_note(api, session):
    member = member_of(session, GUIDE)

    def write():
        url = f"/api/v1/members/{member.id}/notes"
        return "member_notes", [api.post(GUIDE, url, json={"body": "游标"}).get_json()["id"]]

    return write


def _a_transfer_of_tagged_members(api, session):
    me, other = staff_by_phone(session, GUIDE), staff_by_phone(session, COLLEAGUE)
    moving = session.scalars(
        select(Member.id)
        .where(Member.guide_id == me.id, Member.id.in_(select(MemberTag.member_id)))
        .order_by(Member.id)
        .limit(2)
    ).all()
    tags = session.scalars(select(MemberTag.id).where(MemberTag.member_id.in_(moving))).all()
    assert moving and tags

    def write():
        body = {"from_guide_id": me.id, "to_guide_id": other.id, "member_ids": moving}
        assert api.post(MANAGER, "/api/v1/members/transfer", json=body).status_code == 200
        return "member_tags", tags

    return write


def _a_published_campaign(api, session):
    body = {
        "title": "游标回访",
        "starts_at": "2026-01-01T00:00:00Z",
        "due_at": "2030-01-01T00:00:00Z",
        "target": {"store_ids": [store_by_code(session, "SH001").id]},
        "segment": {"stages": ["customer", "regular"]},
        "distribution": "auto",
    }
    campaign_id = api.post(HQ, "/api/v1/campaigns", json=body).get_json()["id"]
    guide_id = staff_by_phone(session, GUIDE).id

    def write():
        assert api.post(HQ, f"/api/v1/campaigns/{campaign_id}/publish?wait=true").status_code == 200
        session.expire_all()
        made = select(Task.id).where(Task.campaign_id == campaign_id, Task.assignee_id == guide_id)
        return "tasks", session.scalars(made).all()

    return write


CASES = {
    "note": (GUIDE, _a_note),
    "transfer": (COLLEAGUE, _a_transfer_of_tagged_members),
    "campaign": (GUIDE, _a_published_campaign),
}


@pytest.mark.parametrize("case", CASES)
def test_a_commit_logs_at_its_sequence_and_the_next_pull_returns_it(api, session, case):
    puller, prepare = CASES[case]
    write = prepare(api, session)
    phone = Phone(api, puller)
    phone.pull()
    before = phone.cursor
    tenant_id = staff_by_phone(session, puller).tenant_id
    table, ids = write()
    assert ids
    session.expire_all()
    counter = session.scalar(select(SyncCounter.value).where(SyncCounter.tenant_id == tenant_id))
    assert counter == before + 1  # one commit, one sequence number
    stamped = session.scalars(
        select(ChangeLogEntry.seq).where(
            ChangeLogEntry.tenant_id == tenant_id,
            ChangeLogEntry.table_name == table,
            ChangeLogEntry.record_id.in_(ids),
            ChangeLogEntry.seq > before,
        )
    ).all()
    assert stamped and set(stamped) == {counter}, (before, sorted(set(stamped)))
    changes = phone.pull()
    assert phone.cursor == counter
    assert set(ids) <= {r["id"] for r in changes[table]["updated"]}


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
