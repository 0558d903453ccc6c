"""The guide's inbox over HTTP: ETags and 304s, kept pages that never go stale, suggestions."""

import time
from datetime import timedelta

from sqlalchemy import event, select

from guideapp.db import utcnow
from guideapp.members.models import Member
from guideapp.phones import mask_phone
from tests.conftest import GUIDE, HQ, MANAGER
from tests.factories import staff_by_phone

INBOX = "/api/v1/inbox"
COLLEAGUE = "13913775684"  # another guide of SH001


def _store_task(
    api,
    session,
    *,
    assignee=GUIDE,
    starts_in=timedelta(hours=-1),
    due_in=timedelta(days=1),
    **fields,
):
    api.headers(MANAGER), api.headers(GUIDE)  # log in (slow hashing) before the clock starts
    now = utcnow()
    body = {
        "title": "回访",
        "starts_at": (now + starts_in).isoformat(),
        "due_at": (now + due_in).isoformat(),
        "assignee_ids": [staff_by_phone(session, assignee).id],
        **fields,
    }
    created = api.post(MANAGER, "/api/v1/tasks", json=body)
    assert created.status_code == 201, created.get_json()
    return created.get_json()[0]["id"]


def _ids(response, key="items"):
    return [item["task"]["id"] for item in response.get_json()[key]]


def test_unchanged_inbox_answers_304_and_a_change_gives_a_new_page(api, session):
    first = api.get(GUIDE, INBOX)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag

    again = api.client.get(INBOX, headers=api.headers(GUIDE, **{"If-None-Match": etag}))
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag

    task_id = _store_task(api, session)  # the manager writes: the guide's page moved on
    changed = api.client.get(INBOX, headers=api.headers(GUIDE, **{"If-None-Match": etag}))
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert task_id in _ids(changed)
    assert changed.get_json()["counts"]["today"] == first.get_json()["counts"]["today"] + 1


def test_a_result_recorded_shows_at_once(api, session):
    member = session.scalar(
        select(Member.id).where(Member.guide_id == staff_by_phone(session, GUIDE).id).limit(1)
    )
    task_id = _store_task(api, session, member_ids=[member])
    item = next(i for i in api.get(GUIDE, INBOX).get_json()["items"] if i["task"]["id"] == task_id)
    assert item["progress"] == {"targets": 1, "answered": 0}

    recorded = api.post(
        GUIDE, f"/api/v1/tasks/{task_id}/targets/{member}/result", json={"result": "unreachable"}
    )
    assert recorded.status_code == 200
    item = next(i for i in api.get(GUIDE, INBOX).get_json()["items"] if i["task"]["id"] == task_id)
    assert item["progress"] == {"targets": 1, "answered": 1}
    assert item["targets"][0]["result"] == "unreachable"


# Real windows of a few seconds: long enough for a loaded CI machine to ask twice first.
WINDOW = timedelta(seconds=5)


def _sleep_until(moment) -> None:
    time.sleep(max(0.0, (moment - utcnow()).total_seconds()) + 0.2)


def test_a_task_moves_from_upcoming_to_today_when_its_window_opens(api, session):
    api.headers(MANAGER), api.headers(GUIDE)  # logins first: their hashing takes time
    opens = utcnow() + WINDOW
    task_id = _store_task(api, session, starts_in=WINDOW)
    assert task_id in _ids(api.get(GUIDE, f"{INBOX}?bucket=upcoming"))
    assert task_id not in _ids(api.get(GUIDE, INBOX))  # kept until the window opens...
    _sleep_until(opens)  # ...and no write happens meanwhile: only the clock moves
    assert task_id in _ids(api.get(GUIDE, INBOX))
    assert task_id not in _ids(api.get(GUIDE, f"{INBOX}?bucket=upcoming"))


def test_a_task_falls_overdue_when_its_due_time_passes(api, session):
    api.headers(MANAGER), api.headers(GUIDE)  # logins first: their hashing takes time
    due = utcnow() + WINDOW
    task_id = _store_task(api, session, starts_in=timedelta(hours=-2), due_in=WINDOW)
    assert task_id in _ids(api.get(GUIDE, INBOX))
    _sleep_until(due)
    assert task_id not in _ids(api.get(GUIDE, INBOX))
    assert task_id in _ids(api.get(GUIDE, f"{INBOX}?bucket=overdue"))


def test_pages_are_kept_per_person(api, session):
    mine = _store_task(api, session, assignee=GUIDE)
    theirs = _store_task(api, session, assignee=COLLEAGUE)
    for _ in range(2):  # the second round is served from what the first one kept
        guide, other = _ids(api.get(GUIDE, INBOX)), _ids(api.get(COLLEAGUE, INBOX))
        assert mine in guide and theirs not in guide
        assert theirs in other and mine not in other
    manager = _ids(api.get(MANAGER, INBOX))
    assert {mine, theirs} <= set(manager)


def test_inbox_items_carry_their_suggested_material_and_reply(api, session):
    material = api.post(
        HQ,
        "/api/v1/materials",
        json={
            "kind": "poster",
            "title": "双12海报",
            "url": "https://cdn.example.cn/p.png",
            "target": {"all": True},
        },
    ).get_json()
    expired = api.post(
        HQ,
        "/api/v1/materials",
        json={
            "kind": "text",
            "title": "过期",
            "body": "x",
            "target": {"all": True},
            "valid_from": (utcnow() - timedelta(days=3)).isoformat(),
            "valid_to": (utcnow() - timedelta(days=1)).isoformat(),
        },
    ).get_json()
    reply = api.post(
        HQ,
        "/api/v1/quick-replies",
        json={"title": "邀约", "body": "{member.name}您好，周六来店试穿", "scene": "greeting"},
    ).get_json()
    with_both = _store_task(
        api, session, suggested_material_id=material["id"], suggested_reply_id=reply["id"]
    )
    with_expired = _store_task(api, session, suggested_material_id=expired["id"])
    plain = _store_task(api, session)

    items = {i["task"]["id"]: i for i in api.get(GUIDE, INBOX).get_json()["items"]}
    suggested = items[with_both]["suggested"]
    assert suggested["material"]["title"] == "双12海报"
    assert suggested["material"]["url"] == "https://cdn.example.cn/p.png"
    assert suggested["reply"]["body"] == "{member.name}您好，周六来店试穿"
    assert items[with_expired]["suggested"] == {"material": None, "reply": None}
    assert items[plain]["suggested"] == {}


def test_one_call_for_a_page_of_tasks_whatever_its_size(api, session):
    """No N+1: the page's queries do not grow with the number of tasks on it."""

    def count_queries(path):
        seen = []
        engine = session.get_bind().engine
        listener = lambda *a, **k: seen.append(1)  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            assert api.get(GUIDE, path).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len(seen)

    api.headers(GUIDE)  # log in first: only the inbox request is counted
    _store_task(api, session)
    few = count_queries(f"{INBOX}?limit=50")
    for _ in range(6):
        _store_task(api, session)
    many = count_queries(f"{INBOX}?limit=50")
    assert many == few


def test_query_arguments_are_checked_every_time_and_kept_per_query_string(api, session):
    """The parser keeps inbox argument parses by query string (extensions.ArgumentsParser):
    a bad one is refused every time, and each query string keeps its own meaning."""
    for _ in range(2):
        refused = api.get(GUIDE, f"{INBOX}?bucket=someday&limit=20")
        assert refused.status_code == 422 and "bucket" in str(refused.get_json()["errors"])
    _store_task(api, session)
    today = api.get(GUIDE, f"{INBOX}?bucket=today&limit=20").get_json()
    done = api.get(GUIDE, f"{INBOX}?bucket=done&limit=20").get_json()
    assert today["items"] and all(i["task"]["state"] == "open" for i in today["items"])
    assert all(i["task"]["state"] == "done" for i in done["items"])
    assert len(api.get(GUIDE, f"{INBOX}?bucket=today&limit=1").get_json()["items"]) == 1


def test_a_big_tasks_first_targets_are_embedded_and_its_progress_counts_them_all(api, session):
    """A task naming more members than an item embeds: the first EMBEDDED_TARGETS come
    along, the progress counts every target, answered ones beyond the cut included. A
    guide sees the pool's members' phones masked, the manager in full."""
    from guideapp.tasks.inbox import EMBEDDED_TARGETS

    store = staff_by_phone(session, MANAGER).store_id
    members = list(
        session.scalars(
            select(Member.id).where(Member.store_id == store).order_by(Member.id).limit(60)
        )
    )
    assert len(members) > EMBEDDED_TARGETS
    task_id = _store_task(api, session, title="大促回访", member_ids=members)
    last = api.post(
        MANAGER, f"/api/v1/tasks/{task_id}/targets/{members[-1]}/result", json={"result": "done"}
    )
    assert last.status_code == 200, last.get_json()

    item = next(i for i in api.get(GUIDE, INBOX).get_json()["items"] if i["task"]["id"] == task_id)
    assert item["progress"] == {"targets": len(members), "answered": 1}
    assert len(item["targets"]) == EMBEDDED_TARGETS
    guide_id = staff_by_phone(session, GUIDE).id
    found = session.execute(select(Member.id, Member.guide_id, Member.phone)).all()
    guides = {member: guide for member, guide, _ in found}
    phones = {member: phone for member, _, phone in found}
    mine = {t["member_id"] for t in item["targets"] if guides[t["member_id"]] == guide_id}
    assert 0 < len(mine) < EMBEDDED_TARGETS  # both kinds shown
    for target in item["targets"]:
        full = phones[target["member_id"]]
        shown = target["member"]["phone"]
        assert shown == (full if target["member_id"] in mine else mask_phone(full))
    managers = api.get(MANAGER, f"/api/v1/tasks/{task_id}").get_json()
    assert {t["member"]["phone"] for t in managers["targets"]} <= set(phones.values())
