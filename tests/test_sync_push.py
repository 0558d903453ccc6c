"""Sync push: the REST schemas' limits, one answer for every id out of reach, a bounded
cost for large pushes, a maximum batch, and offline work rescued when a guide moves store."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import event, select

from guideapp.members.models import Member, MemberNote
from guideapp.sync.context import OUT_OF_SCOPE
from guideapp.sync.models import SyncRejection
from guideapp.sync.push import MAX_PUSH_RECORDS
from guideapp.tasks.models import Task, TaskTarget
from tests.conftest import GUIDE, HQ, OTHER_GUIDE
from tests.factories import make_task, staff_by_phone, store_by_code
from tests.sync_phone import Phone

COLLEAGUE = "13913775684"
_keys = itertools.count()


def _push(api, phone: Phone, changes: dict, who: str = GUIDE):
    return api.post(
        who,
        f"/api/v1/sync/push?last_pulled_at={phone.cursor}",
        json={"changes": changes},
        headers={"Idempotency-Key": f"push-test-{next(_keys)}"},
    )


def _ops(created=(), updated=(), deleted=()) -> dict:
    return {"created": list(created), "updated": list(updated), "deleted": list(deleted)}


def _target(session, task: Task, member_id: str) -> TaskTarget:
    target = TaskTarget(tenant_id=task.tenant_id, task_id=task.id, member_id=member_id)
    session.add(target)
    session.flush()
    return target


def test_push_validates_records_with_the_rest_schemas(api, session):
    """Every field a REST schema limits is limited through sync too (a 100,000-character
    note used to be stored while REST refuses 2,001)."""
    me = staff_by_phone(session, GUIDE)
    sh001 = store_by_code(session, "SH001")
    task = make_task(session, sh001, assignee=me.id)
    phone = Phone(api, GUIDE)
    phone.pull()
    mine = sorted(phone.tables["members"])
    target = _target(session, make_task(session, sh001, assignee=me.id), mine[0])
    rest = api.post(GUIDE, f"/api/v1/members/{mine[0]}/notes", json={"body": "x" * 2001})
    assert rest.status_code == 422 and "body" in str(rest.get_json()["errors"])
    phone.pull()
    names_before = {
        m.id: m.name for m in session.scalars(select(Member).where(Member.id.in_(mine)))
    }
    response = _push(
        api,
        phone,
        {
            "member_notes": _ops(
                created=[
                    {"id": "huge-note", "member_id": mine[0], "body": "x" * 100_000},
                    {"id": "n" * 65, "member_id": mine[0], "body": "a note id too long"},
                    {"id": "empty-note", "member_id": mine[0], "body": ""},
                    {"id": "fine-note", "member_id": mine[0], "body": "正常的备注"},
                ]
            ),
            "members": _ops(
                created=[{"id": "m-long-name", "phone": "13588880001", "name": "名" * 61}],
                updated=[
                    {"id": mine[1], "name": "名" * 61},
                    {"id": mine[2], "gender": "robot"},
                    {"id": mine[3], "birthday": "1990-02-30"},
                ],
            ),
            "tasks": _ops(
                updated=[{"id": task.id, "state": "done", "result": "done", "note": "x" * 2001}]
            ),
            "task_targets": _ops(updated=[{"id": target.id, "result": "maybe"}]),
            "member_tags": _ops(
                created=[{"id": "t" * 65, "member_id": mine[0], "tag_id": "whatever"}]
            ),
            "shares": _ops(created=[{"id": "share-1", "material_id": "m", "channel": "fax"}]),
        },
    )
    assert response.status_code == 200, response.get_json()
    rejected = response.get_json()["rejected"]
    expected = {
        "member_notes": {"huge-note": "body", "n" * 65: "id", "empty-note": "body"},
        "members": {"m-long-name": "name", mine[1]: "name", mine[2]: "gender", mine[3]: "birthday"},
        "tasks": {task.id: "note"},
        "task_targets": {target.id: "result"},
        "member_tags": {"t" * 65: "id"},
        "shares": {"share-1": "channel"},
    }
    assert {t: set(ids) for t, ids in rejected.items()} == {
        t: set(ids) for t, ids in expected.items()
    }
    for table, fields in expected.items():
        for record_id, field in fields.items():
            assert f"{field}:" in rejected[table][record_id], (table, record_id, rejected)
    session.expire_all()
    assert session.get(MemberNote, "fine-note") is not None
    assert session.get(MemberNote, "huge-note") is None
    assert session.get(Member, "m-long-name") is None
    assert {
        m.id: m.name for m in session.scalars(select(Member).where(Member.id.in_(mine)))
    } == names_before
    assert session.get(Task, task.id).state == "open"
    assert session.get(TaskTarget, target.id).result is None


def test_tasks_out_of_reach_get_the_answer_an_unknown_id_gets(api, session):
    """A task of another store (assigned, cancelled, in the pool, or changed since the
    phone's pull) reads exactly like an id that names nothing: ids are guessable."""
    bj001 = store_by_code(session, "BJ001")
    other = staff_by_phone(session, OTHER_GUIDE)
    phone = Phone(api, GUIDE)
    phone.pull()
    assigned = make_task(session, bj001, assignee=other.id)
    cancelled = make_task(session, bj001)
    cancelled.state = "cancelled"
    pool = make_task(session, bj001)
    session.flush()
    changed = api.post(  # logged in BJ001's scopes after the phone's pull
        HQ,
        "/api/v1/tasks",
        json={
            "title": "北京店的任务",
            "store_id": bj001.id,
            "starts_at": "2026-01-01T00:00:00Z",
            "due_at": "2030-01-01T00:00:00Z",
            "assignee_ids": [other.id],
        },
    )
    assert changed.status_code == 201, changed.get_json()
    changed_id = changed.get_json()[0]["id"]
    target = _target(session, assigned, session.scalars(select(Member.id)).first())
    ids = [assigned.id, cancelled.id, pool.id, changed_id, "no-such-task"]
    response = _push(
        api,
        phone,
        {
            "tasks": _ops(updated=[{"id": i, "state": "done", "result": "done"} for i in ids]),
            "task_targets": _ops(
                updated=[{"id": i, "result": "done"} for i in (target.id, "no-such-target")]
            ),
        },
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["rejected"] == {
        "tasks": {i: OUT_OF_SCOPE for i in ids},
        "task_targets": {target.id: OUT_OF_SCOPE, "no-such-target": OUT_OF_SCOPE},
    }
    kept = session.scalars(
        select(SyncRejection).where(SyncRejection.record_id.in_([*ids, target.id]))
    ).all()
    assert {(k.record_id, k.reason, k.server_won) for k in kept} == {
        (i, OUT_OF_SCOPE, False) for i in [*ids, target.id]
    }


def test_a_push_beyond_the_maximum_batch_is_413(api, session):
    phone = Phone(api, GUIDE)
    phone.pull()
    too_many = [f"gone-{i}" for i in range(MAX_PUSH_RECORDS + 1)]
    response = _push(api, phone, {"member_notes": _ops(deleted=too_many)})
    assert response.status_code == 413
    body = response.get_json()
    assert body["code"] == 413 and "changes" in body["errors"]
    at_most = _push(api, phone, {"member_notes": _ops(deleted=too_many[:-1])})
    assert at_most.status_code == 200 and at_most.get_json() == {}


@pytest.fixture
def statements(connection):
    counted = []

    def count(conn, cursor, statement, parameters, context, executemany):
        counted.append(statement)

    event.listen(connection, "before_cursor_execute", count)
    yield counted
    event.remove(connection, "before_cursor_execute", count)


def test_a_large_push_with_refused_records_costs_a_few_statements(api, session, statements):
    """Bulk checks are set-based and only what needs applying is replayed: the number of
    statements does not grow with the number of records, refused or not."""
    phone = Phone(api, GUIDE)
    phone.pull()
    colleague = Phone(api, COLLEAGUE)
    colleague.pull()
    mine = sorted(phone.tables["members"])[:20]
    stranger = sorted(colleague.tables["members"])[0]
    taken = session.get(Member, mine[0]).phone  # an existing member's: register refuses it
    notes = [
        {"id": f"bulk-{i}", "member_id": mine[i % len(mine)], "body": f"备注 {i}"}
        for i in range(1200)
    ]
    refused = [
        {"id": f"stranger-{i}", "member_id": stranger, "body": "不是我的会员"} for i in range(200)
    ] + [{"id": f"long-{i}", "member_id": mine[0], "body": "x" * 2001} for i in range(200)]
    changes = {
        # A member whose phone is taken: refused only when register runs (no bulk check
        # foresees it), so the replay must drop it without a savepoint per record.
        "members": _ops(created=[{"id": "dup-phone", "phone": taken, "name": "重复"}]),
        "member_notes": _ops(
            created=notes + refused, deleted=[f"unknown-{i}" for i in range(2000)]
        ),
    }
    statements.clear()
    response = _push(api, phone, changes)
    assert response.status_code == 200, response.get_json()
    rejected = response.get_json()["rejected"]
    assert set(rejected["member_notes"]) == {r["id"] for r in refused}
    assert set(rejected["members"]) == {"dup-phone"}
    assert len(statements) < 80, len(statements)
    session.expire_all()
    stored = session.scalars(
        select(MemberNote.id).where(MemberNote.id.in_([n["id"] for n in notes]))
    ).all()
    assert len(stored) == len(notes)


def test_offline_work_leaving_with_a_store_move_is_rescued(api, session):
    """After a guide moves store the pull is a replacement; WatermelonDB destroys every
    local record it leaves out, edits and all. Its first page lists what left the scope in
    `deleted`, so the client's rescue (push what a pull deletes) keeps the offline work."""
    me = staff_by_phone(session, GUIDE)
    sh001, bj001 = store_by_code(session, "SH001"), store_by_code(session, "BJ001")
    pool_task = make_task(session, sh001, title="店里的任务")
    phone = Phone(api, GUIDE)
    phone.pull()
    assert pool_task.id in phone.tables["tasks"]
    old_store_tasks = {i for i, t in phone.tables["tasks"].items() if t["store_id"] == sh001.id} - {
        i for i, t in phone.tables["tasks"].items() if t["assignee_id"] == me.id
    }
    # Offline: the guide claims the store's task and completes it.
    phone.update(
        "tasks", pool_task.id, assignee_id=me.id, state="done", result="done", note="离线完成"
    )
    moved = api.patch(HQ, f"/api/v1/staff/{me.id}", json={"store_id": bj001.id})
    assert moved.status_code == 200, moved.get_json()
    first = api.get(GUIDE, f"/api/v1/sync/pull?last_pulled_at={phone.cursor}").get_json()
    assert first["experimentalStrategy"] == "replacement"
    assert old_store_tasks <= set(first["changes"]["tasks"]["deleted"])
    assert pool_task.id in first["changes"]["tasks"]["deleted"]
    snapshot = {r["id"] for r in first["changes"]["tasks"]["updated"]}
    assert not snapshot & set(first["changes"]["tasks"]["deleted"])
    phone.sync()
    assert pool_task.id not in phone.tables["tasks"]
    kept = session.scalars(
        select(SyncRejection).where(SyncRejection.record_id == pool_task.id)
    ).all()
    assert [(k.table_name, k.payload["note"], k.payload["state"]) for k in kept] == [
        ("tasks", "离线完成", "done")
    ]
    phone.sync()
    assert not any(phone.pending.values())
    assert (
        len(
            session.scalars(
                select(SyncRejection.id).where(SyncRejection.record_id == pool_task.id)
            ).all()
        )
        == 1
    )


def test_an_id_twice_in_one_table_is_refused_whole(api, session):
    phone = Phone(api, GUIDE)
    phone.pull()
    member_id = sorted(phone.tables["members"])[0]
    note = {"id": "twice", "member_id": member_id, "body": "一次"}
    response = _push(api, phone, {"member_notes": _ops(created=[note, {**note, "body": "两次"}])})
    assert response.status_code == 422, response.get_json()
    assert "member_notes" in str(response.get_json()["errors"])
    assert session.get(MemberNote, "twice") is None
