"""Ids in a body resolve inside the caller's tenant and reach (422 naming the field, the same
for unknown and foreign ids); the database refuses rows that name another tenant's rows."""

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from guideapp.db import new_id, utcnow
from guideapp.jobs.models import Job
from guideapp.members.models import Member, Order, Tag, TagGroup
from guideapp.models import metadata
from guideapp.org.models import Staff, Store
from guideapp.tasks.models import Campaign, CalendarItem, SopRule, Task
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE, RIVAL_GUIDE, RIVAL_HQ
from tests.factories import member_of, staff_by_phone, store_by_code, tag_group_of

WHEN = {
    "starts_at": (utcnow() + timedelta(hours=1)).isoformat(),
    "due_at": (utcnow() + timedelta(days=2)).isoformat(),
}


def _count(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def _errors(response) -> dict:
    """Field errors, whether or not the request parser files them under their location."""
    errors = response.get_json()["errors"]
    return errors.get("json", errors)


def _rival_tag(session):
    group = tag_group_of(session, "rival")
    return session.scalar(select(Tag.id).where(Tag.group_id == group.id))


def test_hq_task_for_another_tenants_store_is_422_like_an_unknown_store(api, session):
    rival_store = store_by_code(session, "SH001", "rival")
    before = _count(session, Task)
    answers = []
    for store_id in (rival_store.id, new_id()):
        body = {"title": "巡店", **WHEN, "store_id": store_id}
        response = api.post(HQ, "/api/v1/tasks", json=body)
        assert response.status_code == 422, response.get_json()
        answers.append(set(_errors(response)))
    assert answers == [{"store_id"}, {"store_id"}]
    assert _count(session, Task) == before
    own = api.post(
        HQ,
        "/api/v1/tasks",
        json={"title": "巡店", **WHEN, "store_id": store_by_code(session, "BJ001").id},
    )
    assert own.status_code == 201, own.get_json()


def _campaign(**extra):
    return {"title": "双十二", **WHEN, "target": {"all": True}, **extra}


@pytest.mark.parametrize(
    "path,body,field",
    [
        (
            "/api/v1/campaigns",
            lambda ids: _campaign(target={"store_ids": [ids["store"]]}),
            ("target", "store_ids"),
        ),
        (
            "/api/v1/campaigns",
            lambda ids: _campaign(target={"region_ids": [ids["region"]]}),
            ("target", "region_ids"),
        ),
        (
            "/api/v1/campaigns",
            lambda ids: _campaign(target={"store_tags": ["没有这个标签"]}),
            ("target", "store_tags"),
        ),
        (
            "/api/v1/campaigns",
            lambda ids: _campaign(segment={"tag_ids": [ids["tag"]]}),
            ("segment", "tag_ids"),
        ),
        (
            "/api/v1/campaigns",
            lambda ids: _campaign(suggested_material_id=ids["material"]),
            ("suggested_material_id",),
        ),
        (
            "/api/v1/campaigns",
            lambda ids: _campaign(suggested_reply_id=ids["reply"]),
            ("suggested_reply_id",),
        ),
        (
            "/api/v1/calendar",
            lambda ids: {
                "day": "2026-12-24",
                "title": "平安夜",
                "target": {"store_ids": [ids["store"]]},
            },
            ("target", "store_ids"),
        ),
        (
            "/api/v1/calendar",
            lambda ids: {
                "day": "2026-12-24",
                "title": "平安夜",
                "target": {"all": True},
                "material_id": ids["material"],
            },
            ("material_id",),
        ),
        (
            "/api/v1/calendar",
            lambda ids: {
                "day": "2026-12-24",
                "title": "平安夜",
                "target": {"all": True},
                "reply_id": ids["reply"],
            },
            ("reply_id",),
        ),
        (
            "/api/v1/sop-rules",
            lambda ids: {
                "name": "371",
                "trigger": "member_joined",
                "steps": [{"days": 3, "title": "t"}],
                "suggested_reply_id": ids["reply"],
            },
            ("suggested_reply_id",),
        ),
        (
            "/api/v1/sop-rules",
            lambda ids: {
                "name": "371",
                "trigger": "member_joined",
                "steps": [{"days": 3, "title": "t"}],
                "suggested_material_id": ids["material"],
            },
            ("suggested_material_id",),
        ),
    ],
)
def test_plans_refuse_unknown_and_foreign_references(api, session, path, body, field):
    from tests.test_scoping import _foreign_materials, _foreign_replies

    rival_store = store_by_code(session, "SH001", "rival")
    foreign = {
        "store": rival_store.id,
        "region": rival_store.region_id,
        "tag": _rival_tag(session),
        "material": _foreign_materials(session, HQ, "material")[0],
        "reply": _foreign_replies(session, HQ, store_by_code(session, "BJ001"), rival_store)[0],
    }
    made_up = {key: new_id() for key in foreign}
    before = [_count(session, model) for model in (Campaign, CalendarItem, SopRule)]
    for ids in (foreign, made_up):
        response = api.post(HQ, path, json=body(ids))
        assert response.status_code == 422, response.get_json()
        errors = _errors(response)
        for key in field[:-1]:
            errors = errors[key]
        assert field[-1] in errors, response.get_json()
    assert [_count(session, model) for model in (Campaign, CalendarItem, SopRule)] == before


@pytest.mark.parametrize(
    "params,trigger",
    [
        ({"silent_days": 30, "colour": "red"}, "silent"),
        ({"typo_days": 30}, "member_joined"),
        ({"silent_days": 30}, "birthday"),  # silent_days means nothing to a birthday
        ({"silent_days": "30"}, "silent"),
    ],
)
def test_sop_rules_refuse_unknown_params(api, session, params, trigger):
    body = {"name": "r", "trigger": trigger, "params": params, "steps": [{"days": 1, "title": "t"}]}
    before = _count(session, SopRule)
    response = api.post(HQ, "/api/v1/sop-rules", json=body)
    assert response.status_code == 422, response.get_json()
    assert "params" in _errors(response)
    assert _count(session, SopRule) == before
    ok = api.post(
        HQ, "/api/v1/sop-rules", json={**body, "trigger": "silent", "params": {"silent_days": 30}}
    )
    assert ok.status_code == 201, ok.get_json()


def test_a_guide_cannot_probe_staff_phones_and_conflicts_name_nobody(api, session):
    guide_body = {"name": "探", "role": "guide", "password": "stride-guide-2026"}
    for phone in (RIVAL_GUIDE, OTHER_GUIDE, "13911119999"):  # staff elsewhere, here, nobody
        response = api.post(GUIDE, "/api/v1/staff", json={**guide_body, "phone": phone})
        assert response.status_code == 403, (phone, response.get_json())
    sh001 = store_by_code(session, "SH001").id
    answers = []
    for phone in (RIVAL_GUIDE, OTHER_GUIDE):  # another tenant's staff, our own staff
        body = {**guide_body, "phone": phone, "store_id": sh001}
        response = api.post(HQ, "/api/v1/staff", json=body)
        assert response.status_code == 409
        answers.append(response.get_json())
    assert answers[0] == answers[1]  # the same words: nothing about the other tenant
    assert "rival" not in str(answers[0]).lower() and "对手" not in str(answers[0])


def test_tag_group_names_are_unique_per_level(api, session):
    def group(phone, name, store_level=False):
        body = {"name": name, "store_level": store_level}
        return api.post(phone, "/api/v1/tag-groups", json=body)

    assert group(HQ, "尺码").status_code == 409  # the demo's HQ group
    before = _count(session, TagGroup)
    assert group(MANAGER, "尺码", store_level=True).status_code == 409  # hides HQ's heading
    assert group(MANAGER, "门店偏好", store_level=True).status_code == 201
    assert group(MANAGER, "门店偏好", store_level=True).status_code == 409
    assert _errors(group(HQ, "尺码")) == {"name": ["Already used."]}
    assert group(RIVAL_HQ, "尺码").status_code == 201  # another tenant's names are its own
    assert _count(session, TagGroup) == before + 2


@pytest.mark.parametrize("kind,field", [("store", "store_id"), ("guide", "guide_id")])
def test_a_store_or_guide_code_without_its_id_is_422(api, kind, field):
    response = api.post(HQ, "/api/v1/codes", json={"kind": kind, "channel": "table_card"})
    assert response.status_code == 422, response.get_json()
    assert field in _errors(response)


# --- the database ---------------------------------------------------------------------


def test_every_key_between_tenant_rows_carries_the_tenant():
    """A new table or key cannot forget it; task_targets keeps no keys to tasks and members
    on purpose (fan-out locking, see TaskTarget), so there is nothing to scope there."""
    unscoped = [
        f"{table.name}.{fk.parent.name} -> {fk.column.table.name}"
        for table in metadata.sorted_tables
        if "tenant_id" in table.c
        for fk in table.foreign_keys
        if "tenant_id" in fk.column.table.c
        and fk.column.table.name != "tenants"
        and "tenant_id" not in [c.name for c in fk.constraint.columns]
    ]
    assert unscoped == []


def _cross_tenant_rows(session):
    stride, rival = store_by_code(session, "SH001"), store_by_code(session, "SH001", "rival")
    guide, rival_guide = staff_by_phone(session, GUIDE), staff_by_phone(session, RIVAL_GUIDE)
    rival_member = member_of(session, RIVAL_GUIDE)
    task = dict(
        tenant_id=stride.tenant_id,
        source="store",
        title="t",
        starts_at=utcnow(),
        due_at=utcnow() + timedelta(days=1),
    )
    member = dict(tenant_id=stride.tenant_id, name="x", source_channel="pos", joined_at=utcnow())
    job = dict(
        tenant_id=stride.tenant_id,
        kind="test.noop",
        params={},
        state="queued",
        progress_done=0,
        progress_unit="things",
        checkpoint={},
        attempts=0,
        max_attempts=5,
        cancel_requested=False,
        created_at=utcnow(),
        heartbeat_at=utcnow(),
        updated_at=utcnow(),
    )
    return {
        "task -> their store": (Task, {**task, "store_id": rival.id}),
        "task -> their guide": (
            Task,
            {**task, "store_id": stride.id, "assignee_id": rival_guide.id},
        ),
        "member -> their store": (Member, {**member, "store_id": rival.id}),
        "job -> their starter": (Job, {**job, "started_by": rival_guide.id}),
        "job -> their store": (Job, {**job, "started_by": guide.id, "store_id": rival.id}),
        "member -> their guide": (Member, {**member, "guide_id": rival_guide.id}),
        "order -> their member": (
            Order,
            dict(
                tenant_id=stride.tenant_id,
                member_id=rival_member.id,
                channel="pos",
                order_no=new_id(),
                amount_fen=100,
                ordered_at=utcnow(),
            ),
        ),
        "staff -> their store": (
            Staff,
            dict(
                tenant_id=guide.tenant_id,
                store_id=rival.id,
                role="guide",
                name="x",
                phone="13600001111",
                password_hash="x",
            ),
        ),
        "store -> their region": (
            Store,
            dict(
                tenant_id=stride.tenant_id,
                brand_id=stride.brand_id,
                region_id=rival.region_id,
                code="X1",
                name="x",
                city="x",
                address="x",
                lat=31.0,
                lng=121.0,
                opening_hours={},
            ),
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "task -> their store",
        "task -> their guide",
        "member -> their store",
        "member -> their guide",
        "job -> their starter",
        "job -> their store",
        "order -> their member",
        "staff -> their store",
        "store -> their region",
    ],
)
def test_the_database_refuses_a_row_naming_another_tenants_row(session, case):
    model, values = _cross_tenant_rows(session)[case]
    values = {"id": new_id(), **values}
    if model is Task:
        values["dedupe_key"] = new_id()
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            session.execute(insert(model).values(**values))
    # The same row with our own tenant's record is fine (the test is not refused for another
    # reason): swap the foreign id for the matching one of our tenant.
    own = _own_counterparts(session)
    fixed = {k: own.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
    with session.begin_nested():
        session.execute(insert(model).values(**fixed))


def _own_counterparts(session):
    rival, stride = store_by_code(session, "SH001", "rival"), store_by_code(session, "SH001")
    return {
        rival.id: stride.id,
        rival.region_id: stride.region_id,
        staff_by_phone(session, RIVAL_GUIDE).id: staff_by_phone(session, GUIDE).id,
        member_of(session, RIVAL_GUIDE).id: member_of(session, GUIDE).id,
    }
