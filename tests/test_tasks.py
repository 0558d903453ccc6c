"""The HQ -> manager -> guide path, store tasks, cancellation, transfer and dashboards."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp.policy.actor import Actor
from guideapp.db import make_engine, transaction, utcnow
from guideapp.demo import load_demo
from guideapp.errors import InvalidState
from guideapp.tasks import service
from guideapp.members.models import Member
from guideapp.tasks.models import Task, TaskTarget
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE
from tests.conftest import FIXTURES
from tests.databases import backends, run_in_threads, scratch_database
from tests.factories import staff_by_phone, store_by_code

COLLEAGUE = "13913775684"


def _window(days_from=-1, days_to=5):
    now = utcnow()
    return {
        "starts_at": (now + timedelta(days=days_from)).isoformat(),
        "due_at": (now + timedelta(days=days_to)).isoformat(),
    }


def _campaign(api, **overrides):
    body = {"title": "冬季新品回访", "target": {"all": True}, **_window(), **overrides}
    created = api.post(HQ, "/api/v1/campaigns", json=body)
    assert created.status_code == 201, created.get_json()
    return created.get_json()["id"]


def test_hq_to_manager_to_guide(api, session):
    sh001 = store_by_code(session, "SH001")
    cid = _campaign(api, target={"store_ids": [sh001.id]}, segment={"stages": ["regular"]})
    published = api.post(HQ, f"/api/v1/campaigns/{cid}/publish?wait=true").get_json()
    assert published["tasks"] == 1
    regulars = session.scalar(
        select(func.count())
        .select_from(Member)
        .where(Member.store_id == sh001.id, Member.stage == "regular")
    )
    assert published["targets"] == regulars > 0
    assert api.post(HQ, f"/api/v1/campaigns/{cid}/publish?wait=true").status_code == 409

    store_inbox = api.get(MANAGER, "/api/v1/inbox").get_json()
    task = store_inbox["items"][0]["task"]
    assert task["assignee_id"] is None and task["campaign_id"] == cid
    guide = staff_by_phone(session, GUIDE)
    assigned = api.post(MANAGER, f"/api/v1/tasks/{task['id']}/assign", json={"guide_id": guide.id})
    assert assigned.status_code == 200

    mine = api.get(GUIDE, "/api/v1/inbox").get_json()
    item = next(i for i in mine["items"] if i["task"]["id"] == task["id"])
    assert item["progress"] == {"targets": regulars, "answered": 0}
    member_id = item["targets"][0]["member_id"]
    ok = api.post(
        GUIDE,
        f"/api/v1/tasks/{task['id']}/targets/{member_id}/result",
        json={"result": "done", "note": "约了周六到店"},
    )
    assert ok.status_code == 200
    stranger = session.scalar(select(Member.id).where(Member.store_id != sh001.id))
    assert (
        api.post(
            GUIDE, f"/api/v1/tasks/{task['id']}/targets/{stranger}/result", json={"result": "done"}
        ).status_code
        == 422
    )
    assert (
        api.post(GUIDE, f"/api/v1/tasks/{task['id']}/complete", json={"result": "done"}).status_code
        == 200
    )
    assert api.get(GUIDE, "/api/v1/inbox?bucket=done").get_json()["counts"]["done"] >= 1
    assert api.post(GUIDE, f"/api/v1/tasks/{task['id']}/complete", json={}).status_code == 409


def test_auto_distribution_gives_each_guide_their_own_members(api, session):
    cid = _campaign(api, distribution="auto", segment={"stages": ["customer", "regular"]})
    api.post(HQ, f"/api/v1/campaigns/{cid}/publish?wait=true")
    tasks = session.scalars(select(Task).where(Task.campaign_id == cid)).all()
    assert tasks and all(t.assignee_id for t in tasks)
    for task in tasks[:20]:
        guides = set(
            session.scalars(
                select(Member.guide_id)
                .join(TaskTarget, TaskTarget.member_id == Member.id)
                .where(TaskTarget.task_id == task.id)
            )
        )
        assert guides == {task.assignee_id}


def test_cancel_removes_open_tasks_from_inboxes(api, session):
    cid = _campaign(api, distribution="auto")
    api.post(HQ, f"/api/v1/campaigns/{cid}/publish?wait=true")
    before = api.get(GUIDE, "/api/v1/inbox").get_json()["counts"]["today"]
    result = api.post(HQ, f"/api/v1/campaigns/{cid}/cancel").get_json()
    assert result["state"] == "cancelled" and result["tasks"] > 0
    assert api.get(GUIDE, "/api/v1/inbox").get_json()["counts"]["today"] == before - 1
    assert (
        session.scalar(
            select(func.count())
            .select_from(Task)
            .where(Task.campaign_id == cid, Task.state == "open")
        )
        == 0
    )


def test_store_task_claimed_by_one_guide(api, session):
    created = api.post(MANAGER, "/api/v1/tasks", json={"title": "整理新品陈列", **_window()})
    assert created.status_code == 201
    task_id = created.get_json()[0]["id"]
    inbox = api.get(GUIDE, "/api/v1/inbox").get_json()
    assert task_id in [i["task"]["id"] for i in inbox["claimable"]]
    me, colleague = staff_by_phone(session, GUIDE), staff_by_phone(session, COLLEAGUE)
    assert (
        api.post(
            GUIDE, f"/api/v1/tasks/{task_id}/assign", json={"guide_id": colleague.id}
        ).status_code
        == 422
    )
    assert (
        api.post(GUIDE, f"/api/v1/tasks/{task_id}/assign", json={"guide_id": me.id}).status_code
        == 200
    )
    assert (
        api.post(
            COLLEAGUE, f"/api/v1/tasks/{task_id}/assign", json={"guide_id": colleague.id}
        ).status_code
        == 404
    )  # no longer claimable
    assert api.get(OTHER_GUIDE, f"/api/v1/tasks/{task_id}").status_code == 404


def test_store_task_for_named_guides_and_members(api, session):
    me, colleague = staff_by_phone(session, GUIDE), staff_by_phone(session, COLLEAGUE)
    members = session.scalars(select(Member.id).where(Member.guide_id == me.id).limit(3)).all()
    created = api.post(
        MANAGER,
        "/api/v1/tasks",
        json={
            "title": "电话回访",
            **_window(),
            "assignee_ids": [me.id, colleague.id],
            "member_ids": members,
        },
    )
    assert created.status_code == 201 and len(created.get_json()) == 2
    other = session.scalar(
        select(Member.id).where(Member.guide_id == staff_by_phone(session, OTHER_GUIDE).id)
    )
    refused = api.post(
        MANAGER, "/api/v1/tasks", json={"title": "x", **_window(), "member_ids": [other]}
    )
    assert refused.status_code == 422 and "member_ids" in refused.get_json()["errors"]
    bad_window = api.post(MANAGER, "/api/v1/tasks", json={"title": "x", **_window(2, 1)})
    assert bad_window.status_code == 422 and "due_at" in bad_window.get_json()["errors"]
    assert api.post(GUIDE, "/api/v1/tasks", json={"title": "x", **_window()}).status_code == 403


def test_open_tasks_follow_members_to_their_new_guide(api, session):
    me, colleague = staff_by_phone(session, GUIDE), staff_by_phone(session, COLLEAGUE)
    cid = _campaign(api, distribution="auto", segment={"stages": ["customer", "regular"]})
    api.post(HQ, f"/api/v1/campaigns/{cid}/publish?wait=true")
    task = session.scalar(select(Task).where(Task.campaign_id == cid, Task.assignee_id == me.id))
    targets = session.scalars(
        select(TaskTarget.member_id).where(TaskTarget.task_id == task.id)
    ).all()
    moving = targets[:2]
    response = api.post(
        MANAGER,
        "/api/v1/members/transfer",
        json={"from_guide_id": me.id, "to_guide_id": colleague.id, "member_ids": moving},
    )
    assert response.status_code == 200
    session.expire_all()
    for member_id in moving:
        holder = session.scalar(
            select(Task)
            .join(TaskTarget, TaskTarget.task_id == Task.id)
            .where(TaskTarget.member_id == member_id, Task.campaign_id == cid)
        )
        assert holder.assignee_id == colleague.id
    assert session.get(Task, task.id).assignee_id == me.id  # the rest stays


def test_guide_leaving_hands_over_all_open_tasks(api, session):
    me, colleague = staff_by_phone(session, GUIDE), staff_by_phone(session, COLLEAGUE)
    api.post(MANAGER, "/api/v1/tasks", json={"title": "盘点", **_window(), "assignee_ids": [me.id]})
    api.post(MANAGER, f"/api/v1/staff/{me.id}/leave", json={"transfer_to": colleague.id})
    assert (
        session.scalar(
            select(func.count())
            .select_from(Task)
            .where(Task.assignee_id == me.id, Task.state == "open")
        )
        == 0
    )


def test_dashboard_numbers_match_a_hand_count(api, session):
    sh001 = store_by_code(session, "SH001")
    me = staff_by_phone(session, GUIDE)
    members = session.scalars(
        select(Member).where(Member.guide_id == me.id).order_by(Member.id).limit(4)
    ).all()
    cid = _campaign(
        api,
        target={"store_ids": [sh001.id]},
        distribution="auto",
        segment={"member_ids": [m.id for m in members]} if False else {},
    )
    created = api.post(
        MANAGER,
        "/api/v1/tasks",
        json={
            "title": "回访4人",
            **_window(),
            "assignee_ids": [me.id],
            "member_ids": [m.id for m in members],
        },
    ).get_json()[0]
    for m, result in zip(members[:3], ["done", "declined", "unreachable"], strict=True):
        api.post(
            GUIDE, f"/api/v1/tasks/{created['id']}/targets/{m.id}/result", json={"result": result}
        )
    order = {
        "channel": "pos",
        "order_no": "DASH-1",
        "amount_fen": 5000,
        "ordered_at": (utcnow() + timedelta(minutes=1)).isoformat(),
        "phone": members[0].phone,
    }
    assert api.post(HQ, "/api/v1/orders", json=order).status_code == 200
    api.post(GUIDE, f"/api/v1/tasks/{created['id']}/complete", json={"result": "done"})
    rows = api.get(MANAGER, "/api/v1/dashboards/tasks?group_by=guide").get_json()
    row = next(r for r in rows if r["key"] == me.id)
    assert row["targets"] == 4 and row["answered"] == 3 and row["converted"] == 1
    assert row["conversion_rate"] == round(1 / 3, 4)
    assert row["done"] >= 1 and 0 < row["completion_rate"] <= 1
    assert cid
    hq_rows = api.get(HQ, "/api/v1/dashboards/tasks?group_by=store").get_json()
    assert {
        r["key"] for r in api.get(MANAGER, "/api/v1/dashboards/tasks?group_by=store").get_json()
    } <= {sh001.id}
    assert len(hq_rows) >= 1


@pytest.mark.parametrize("backend", backends())
def test_concurrent_publishes_fan_out_once(backend, tmp_path_factory):
    """Two HQ consoles press publish at once: one fans out, the other is told it is done."""
    from alembic import command

    from guideapp.migrations import alembic_config

    with scratch_database(backend, tmp_path_factory) as url:
        command.upgrade(alembic_config({}, url=url), "head")
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as s, transaction(s):
            load_demo(s, FIXTURES)
            hq = Actor.for_staff(staff_by_phone(s, HQ))
            campaign = service.create_campaign(
                s,
                actor=hq,
                data={
                    "title": "并发发布",
                    "target": {"all": True},
                    "segment": {"stages": ["regular"]},
                    "distribution": "auto",
                    "starts_at": utcnow(),
                    "due_at": utcnow() + timedelta(days=3),
                },
            )
        barrier, outcomes = threading.Barrier(2), []

        def publish():
            barrier.wait()
            try:
                with Session(engine) as s, transaction(s):
                    outcomes.append(service.publish(s, actor=hq, campaign_id=campaign.id))
            except InvalidState as exc:
                outcomes.append(exc)

        run_in_threads(publish, 2)
        published = [o for o in outcomes if isinstance(o, dict)]
        assert len(published) == 1 and len(outcomes) == 2, outcomes
        with Session(engine) as s:
            tasks = s.scalar(
                select(func.count()).select_from(Task).where(Task.campaign_id == campaign.id)
            )
            targets = s.scalar(
                select(func.count())
                .select_from(TaskTarget)
                .join(Task, Task.id == TaskTarget.task_id)
                .where(Task.campaign_id == campaign.id)
            )
        assert (tasks, targets) == (published[0]["tasks"], published[0]["targets"])
        assert tasks > 0 and targets > 0
        engine.dispose()
