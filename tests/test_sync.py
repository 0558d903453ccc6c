"""Sync through the API: scope, paging, echoes, removal, exactly-once push, conflicts."""

from sqlalchemy import func, select

from guideapp.members.models import Member, MemberNote, Order
from guideapp.sync import service as sync_service
from guideapp.changelog import SyncCounter
from guideapp.sync.models import SyncRejection
from guideapp.tasks.models import Task
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE
from tests.factories import make_task, staff_by_phone, store_by_code
from tests.sync_phone import Phone

COLLEAGUE = "13913775684"


def test_first_pull_is_the_whole_scope_and_pages_add_up(api, session):
    phone = Phone(api, GUIDE)
    phone.pull()
    assert len(phone.tables["members"]) == 60
    me = staff_by_phone(session, GUIDE)
    assert all(m["guide_id"] == me.id for m in phone.tables["members"].values())
    assert isinstance(next(iter(phone.tables["members"].values()))["joined_at"], int)
    actor = _actor(session, GUIDE)
    pages, token = [], None
    while True:
        page = sync_service.pull(
            session, actor=actor, last_pulled_at=None, schema_version=1, page=token, page_size=25
        )
        pages.append(page)
        token = page["next_page"]
        if not token:
            break
    assert len(pages) > 4 and len({p["timestamp"] for p in pages}) == 1
    paged = {r["id"] for p in pages for r in p["changes"]["members"]["updated"]}
    assert paged == set(phone.tables["members"])


def test_timestamp_is_positive_and_never_goes_down(api, session):
    phone = Phone(api, GUIDE)
    phone.pull()
    first = phone.cursor
    assert first >= 1
    phone.pull()
    assert phone.cursor == first  # nothing changed: the same cursor, an empty pull
    api.post(
        MANAGER,
        "/api/v1/tasks",
        json={"title": "t", "starts_at": "2026-01-01T00:00:00Z", "due_at": "2030-01-01T00:00:00Z"},
    )
    phone.pull()
    assert phone.cursor > first


def test_changes_made_through_rest_reach_the_phone(api, session):
    phone = Phone(api, GUIDE)
    phone.pull()
    member_id = next(iter(phone.tables["members"]))
    api.post(MANAGER, f"/api/v1/members/{member_id}/notes", json={"body": "店长备注"})
    changes = phone.pull()
    assert [n["body"] for n in changes["member_notes"]["updated"]] == ["店长备注"]
    assert changes["tasks"]["updated"] == []


def test_records_leaving_the_scope_arrive_as_deleted(api, session):
    phone, colleague = Phone(api, GUIDE), Phone(api, COLLEAGUE)
    phone.pull()
    colleague.pull()
    moving = sorted(phone.tables["members"])[:3]
    me, other = staff_by_phone(session, GUIDE), staff_by_phone(session, COLLEAGUE)
    api.post(
        MANAGER,
        "/api/v1/members/transfer",
        json={"from_guide_id": me.id, "to_guide_id": other.id, "member_ids": moving},
    )
    moving_tags = {i for i, t in phone.tables["member_tags"].items() if t["member_id"] in moving}
    changes = phone.pull()
    assert set(moving) <= set(changes["members"]["deleted"])
    assert not set(moving) & set(phone.tables["members"])
    assert moving_tags <= set(changes["member_tags"]["deleted"])  # the card's parts go too
    colleague.pull()
    assert set(moving) <= set(colleague.tables["members"])
    assert moving_tags <= set(colleague.tables["member_tags"])


def test_offline_work_on_a_record_that_leaves_the_scope_is_kept(api, session):
    """WatermelonDB destroys records a pull deletes, edits and all: the client pushes them
    first (tests/sync_phone.py `_rescue`), and the server keeps them as server-wins."""
    me = staff_by_phone(session, GUIDE)
    task = make_task(session, store_by_code(session, "SH001"), assignee=me.id)
    phone = Phone(api, GUIDE)
    phone.pull()
    phone.update("tasks", task.id, state="done", result="done", note="离线完成")
    api.post(MANAGER, f"/api/v1/tasks/{task.id}/cancel")
    phone.sync()
    assert task.id not in phone.tables["tasks"]
    kept = session.scalar(select(SyncRejection).where(SyncRejection.record_id == task.id))
    assert kept is not None and kept.server_won and kept.payload["note"] == "离线完成"


def test_cancelled_task_disappears_from_the_phone(api, session):
    created = api.post(
        MANAGER,
        "/api/v1/tasks",
        json={
            "title": "盘点",
            "starts_at": "2026-01-01T00:00:00Z",
            "due_at": "2030-01-01T00:00:00Z",
            "assignee_ids": [staff_by_phone(session, GUIDE).id],
        },
    ).get_json()[0]
    phone = Phone(api, GUIDE)
    phone.pull()
    assert created["id"] in phone.tables["tasks"]
    api.post(MANAGER, f"/api/v1/tasks/{created['id']}/cancel")
    assert created["id"] in phone.pull()["tasks"]["deleted"]


def test_guide_moving_store_gets_a_replacement(api, session):
    phone = Phone(api, GUIDE)
    phone.pull()
    me = staff_by_phone(session, GUIDE)
    bj = store_by_code(session, "BJ001")
    api.patch(HQ, f"/api/v1/staff/{me.id}", json={"store_id": bj.id})
    response = api.get(GUIDE, f"/api/v1/sync/pull?last_pulled_at={phone.cursor}")
    assert response.get_json()["experimentalStrategy"] == "replacement"


def test_too_old_cursor_gets_a_replacement(api, session):
    phone = Phone(api, GUIDE)
    phone.pull()
    counter = session.scalar(
        select(SyncCounter).where(SyncCounter.tenant_id == staff_by_phone(session, GUIDE).tenant_id)
    )
    counter.oldest_kept_seq = phone.cursor + 1
    counter.value += 5
    session.flush()
    response = api.get(GUIDE, f"/api/v1/sync/pull?last_pulled_at={phone.cursor}").get_json()
    assert response["experimentalStrategy"] == "replacement"


def test_offline_work_is_pushed_exactly_once(api, session):
    phone = Phone(api, GUIDE)
    phone.pull()
    member_id = sorted(phone.tables["members"])[0]
    phone.create(
        "member_notes",
        {
            "id": "offline-note-1",
            "member_id": member_id,
            "body": "地下室里记的",
            "noted_at": 1795000000000,
        },
    )
    phone.create(
        "members",
        {
            "id": "offline-member-1",
            "phone": "13588887777",
            "name": "新客",
            "gender": "female",
            "birthday": "1990-01-31",
        },
    )
    first = phone.push(key="same-key")
    assert first.status_code == 200
    phone.pending = {
        "member_notes": {"offline-note-1": {"op": "created"}},
        "members": {"offline-member-1": {"op": "created"}},
    }
    replay = phone.push(key="same-key")  # the response was lost; the phone retries
    assert replay.headers.get("Idempotent-Replayed") == "true"
    phone.pending = {"member_notes": {"offline-note-1": {"op": "created"}}}
    assert phone.push(key="fresh-key").status_code == 409  # changed since last pull: its own push
    phone.sync()
    assert (
        session.scalar(
            select(func.count()).select_from(MemberNote).where(MemberNote.id == "offline-note-1")
        )
        == 1
    )
    assert "offline-member-1" in phone.tables["members"]  # echoed back, bound to the guide


def test_conflict_rejects_the_whole_push(api, session):
    phone = Phone(api, GUIDE)
    phone.pull()
    member_id = sorted(phone.tables["members"])[0]
    phone.update("members", member_id, name="手机改名")
    phone.create("member_notes", {"id": "n-conflict", "member_id": member_id, "body": "x"})
    api.post(MANAGER, f"/api/v1/members/{member_id}/notes", json={"body": "店长同时在写"})
    response = phone.push()
    assert response.status_code == 409
    assert member_id in response.get_json()["errors"]["members"]
    assert session.get(MemberNote, "n-conflict") is None  # nothing applied
    phone.sync()
    assert session.get(MemberNote, "n-conflict") is not None


def test_server_wins_on_cancelled_task_and_keeps_the_attempt(api, session):
    me = staff_by_phone(session, GUIDE)
    task = make_task(session, store_by_code(session, "SH001"), assignee=me.id)
    phone = Phone(api, GUIDE)
    phone.pull()
    api.post(MANAGER, f"/api/v1/tasks/{task.id}/cancel")
    phone.update("tasks", task.id, state="done", result="done", note="做完了")
    response = phone.push()
    assert response.status_code == 200
    kept = session.scalar(select(SyncRejection).where(SyncRejection.record_id == task.id))
    assert kept.server_won and kept.payload["note"] == "做完了"
    session.expire_all()
    assert session.get(Task, task.id).state == "cancelled"
    assert task.id in phone.pull()["tasks"]["deleted"]
    for caller, sees in ((GUIDE, True), (MANAGER, True), (HQ, True), (OTHER_GUIDE, False)):
        items = api.get(caller, "/api/v1/sync/rejections").get_json()["items"]
        assert (task.id in [i["record_id"] for i in items]) is sees, caller


def test_out_of_scope_writes_are_refused_per_record(api, session):
    phone = Phone(api, GUIDE)
    phone.pull()
    others = Phone(api, COLLEAGUE)
    others.pull()
    stranger = sorted(others.tables["members"])[0]
    phone.create("member_notes", {"id": "n-stranger", "member_id": stranger, "body": "x"})
    phone.create(
        "member_notes",
        {"id": "n-mine", "member_id": sorted(phone.tables["members"])[0], "body": "ok"},
    )
    body = phone.push().get_json()
    assert body["experimentalRejectedIds"] == {"member_notes": ["n-stranger"]}
    assert "scope" in body["rejected"]["member_notes"]["n-stranger"]
    assert session.get(MemberNote, "n-mine") is not None
    assert session.get(MemberNote, "n-stranger") is None
    # WatermelonDB keeps a refused record unsent; the next syncs must not wedge on it.
    phone.sync()
    phone.sync()
    assert not any(phone.pending.values()) and "n-stranger" not in phone.tables["member_notes"]
    kept = session.scalars(
        select(SyncRejection).where(SyncRejection.record_id == "n-stranger")
    ).all()
    # Refused once; the rescue re-sends it when the pull removes it: the same attempt, kept once.
    assert [(k.server_won, "scope" in k.reason, k.payload["body"]) for k in kept] == [
        (False, True, "x")
    ]
    listed = api.get(GUIDE, "/api/v1/sync/rejections").get_json()["items"]
    assert [i["record_id"] for i in listed].count("n-stranger") == 1


def test_bad_pushes_are_4xx_and_write_nothing(api):
    phone = Phone(api, GUIDE)
    phone.pull()
    url = f"/api/v1/sync/push?last_pulled_at={phone.cursor}"
    no_key = api.post(GUIDE, url, json={"changes": {}})
    assert no_key.status_code == 422 and "Idempotency-Key" in no_key.get_json()["errors"]
    for changes in (
        {"nope": {}},
        {"members": []},
        {"members": {"created": [{"no": "id"}]}},
        {"members": {"deleted": [1]}},
    ):
        bad = api.post(GUIDE, url, json={"changes": changes}, headers={"Idempotency-Key": "b"})
        assert bad.status_code == 422, changes
    future = api.post(
        GUIDE,
        "/api/v1/sync/push?last_pulled_at=99999999",
        json={"changes": {}},
        headers={"Idempotency-Key": "c"},
    )
    assert future.status_code == 422
    assert api.get(HQ, "/api/v1/sync/pull").status_code == 403


def test_migration_pull_sends_whole_tables(api):
    phone = Phone(api, GUIDE)
    phone.pull()
    url = (
        f"/api/v1/sync/pull?last_pulled_at={phone.cursor}&schema_version=1&migration="
        '{"from":1,"tables":["tags"],"columns":[{"table":"tag_groups","columns":["name"]}]}'
    )
    body = api.get(GUIDE, url).get_json()
    assert len(body["changes"]["tags"]["updated"]) == len(phone.tables["tags"]) > 0
    assert len(body["changes"]["tag_groups"]["updated"]) == len(phone.tables["tag_groups"])
    assert body["changes"]["members"]["updated"] == []


def _actor(session, phone):
    from guideapp.policy.actor import Actor

    return Actor.for_staff(staff_by_phone(session, phone))


def test_a_published_campaign_reaches_the_phone_with_its_targets(api, session):
    phone = Phone(api, GUIDE)
    phone.pull()
    sh001 = store_by_code(session, "SH001")
    created = api.post(
        HQ,
        "/api/v1/campaigns",
        json={
            "title": "回访",
            "starts_at": "2026-01-01T00:00:00Z",
            "due_at": "2030-01-01T00:00:00Z",
            "target": {"store_ids": [sh001.id]},
            "segment": {"stages": ["customer", "regular"]},
            "distribution": "auto",
        },
    ).get_json()
    api.post(HQ, f"/api/v1/campaigns/{created['id']}/publish?wait=true")
    changes = phone.pull()
    task_ids = {t["id"] for t in changes["tasks"]["updated"]}
    targets = changes["task_targets"]["updated"]
    assert len(task_ids) == 1 and targets and {t["task_id"] for t in targets} == task_ids
    api.post(HQ, f"/api/v1/campaigns/{created['id']}/cancel")
    gone = phone.pull()
    assert task_ids <= set(gone["tasks"]["deleted"])  # (colleagues' ids too: harmless)
    assert {t["id"] for t in targets} <= set(gone["task_targets"]["deleted"])


def test_task_targets_follow_a_merge_to_the_phone(api, session):
    """B merged into A: a phone holding tasks that name B gets their targets naming A, and
    a target made redundant (the task named both) as deleted; B's orders follow A too."""
    me = staff_by_phone(session, GUIDE)
    survivor_id, merged_id = session.scalars(
        select(Member.id)
        .where(Member.guide_id == me.id, Member.id.in_(select(Order.member_id)))
        .order_by(Member.id)
        .limit(2)
    ).all()
    merged_orders = set(session.scalars(select(Order.id).where(Order.member_id == merged_id)))

    def store_task(member_ids):
        body = {
            "title": "回访",
            "starts_at": "2026-01-01T00:00:00Z",
            "due_at": "2030-01-01T00:00:00Z",
            "assignee_ids": [me.id],
            "member_ids": member_ids,
        }
        created = api.post(MANAGER, "/api/v1/tasks", json=body)
        assert created.status_code == 201, created.get_json()
        return created.get_json()[0]["id"]

    only_b, both = store_task([merged_id]), store_task([survivor_id, merged_id])
    phone = Phone(api, GUIDE)
    phone.pull()
    targets = phone.tables["task_targets"]
    (moving,) = [i for i, t in targets.items() if t["task_id"] == only_b]
    (redundant,) = [
        i for i, t in targets.items() if t["task_id"] == both and t["member_id"] == merged_id
    ]
    merged = api.post(HQ, f"/api/v1/members/{survivor_id}/merge", json={"merged_id": merged_id})
    assert merged.status_code == 200, merged.get_json()
    changes = phone.pull()
    updated = {t["id"]: t for t in changes["task_targets"]["updated"]}
    assert updated[moving]["member_id"] == survivor_id
    assert redundant in changes["task_targets"]["deleted"]
    orders = {o["id"]: o["member_id"] for o in changes["orders"]["updated"]}
    assert merged_orders and all(orders[o] == survivor_id for o in merged_orders)
    mine = [t for t in phone.tables["task_targets"].values() if t["task_id"] in (only_b, both)]
    assert sorted((t["task_id"], t["member_id"]) for t in mine) == sorted(
        [(only_b, survivor_id), (both, survivor_id)]
    )
