"""What each WeCom event does, end to end: WeCom's encrypted callback (the fake) -> stored ->
the job worker -> members, relationships, bindings, tags, recruits, welcomes, tasks, alerts.
Everything through the HTTP callback and run_jobs, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from guideapp import create_app
from guideapp.commissions.models import CommissionEntry, CommissionRecruit
from guideapp.db import transaction, utcnow
from guideapp.members.identity import create_member
from guideapp.members.models import Binding, Member, MemberIdentity, MemberTag
from guideapp.org.models import Staff, Tenant
from guideapp.scans.models import ScanCode
from guideapp.tasks.models import SopRule, Task
from guideapp.tasks.scheduler import tick
from guideapp.wecom import events as wecom_events
from guideapp.wecom.models import WecomContact, WecomContactWay, WecomEvent
from tests.conftest import (
    GUIDE,
    HQ,
    MANAGER,
    OTHER_GUIDE,
    RIVAL_HQ,
    ApiClient,
    make_config,
)
from tests.queues import queue_url, start_worker
from tests.test_jobs import live_database, queue_backend, queue_of, run_jobs  # noqa: F401 (fixtures)
from tests.wecom_helpers import CORP_ID, post_callback

ZHANG, CHEN = "zhangdaogou", "chendaogou"  # GUIDE's and OTHER_GUIDE's WeCom user ids
STATE = "gd:zhang-card"
SH002_MANAGER = "13914862807"
WELCOME_PATH = "/cgi-bin/externalcontact/send_welcome_msg"
GET_PATH = "/cgi-bin/externalcontact/get"


def _staff(session, phone) -> Staff:
    return session.scalar(select(Staff).where(Staff.phone == phone))


def _tenant_id(session, slug="stride") -> str:
    return session.scalar(select(Tenant.id).where(Tenant.slug == slug))


@pytest.fixture
def corp(api, session, wecom_corp):
    """The demo brand on the fake: GUIDE is `zhangdaogou`, OTHER_GUIDE `chendaogou`; the
    zhang-card code has a contact way (state gd:zhang-card) and a welcome."""
    fake = wecom_corp.fake
    for userid, phone in ((ZHANG, GUIDE), (CHEN, OTHER_GUIDE)):
        fake.add_user(CORP_ID, userid, name=userid)
        _staff(session, phone).wecom_userid = userid
    code = session.scalar(select(ScanCode).where(ScanCode.code == "zhang-card"))
    session.add(
        WecomContactWay(
            tenant_id=code.tenant_id,
            state=STATE,
            code_id=code.id,
            guide_id=code.guide_id,
            userids=[ZHANG],
            config_id="cfg-zhang",
        )
    )
    session.flush()
    answer = api.client.put(
        f"/api/v1/wecom/welcomes/{code.id}",
        json={"text": "你好，我是张导购，欢迎光临！"},
        headers=api.headers(HQ),
    )
    assert answer.status_code == 200, answer.get_json()
    wecom_corp.code = code
    return wecom_corp


def _customer(corp, external_userid, name="林小姐", unionid=None):
    corp.fake.add_customer(CORP_ID, external_userid, name, unionid=unionid)


def _deliver(api, corp, fields, times=1):
    for _ in range(times):
        args, body = corp.callback(fields)
        answer = post_callback(api.client, args, body)
        assert answer.get_data(as_text=True) == "success", answer.get_data(as_text=True)


def _adds(api, corp, external_userid, *, userid=ZHANG, state=STATE, times=1, **kwargs):
    fields = corp.fake.customer_adds(CORP_ID, userid, external_userid, state=state, **kwargs)
    _deliver(api, corp, fields, times)
    return fields


def _count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _member_of(session, external_userid) -> Member:
    session.expire_all()
    member_id = session.scalar(
        select(MemberIdentity.member_id).where(
            MemberIdentity.kind == f"wecom:{CORP_ID}", MemberIdentity.value == external_userid
        )
    )
    return session.get(Member, member_id) if member_id else None


def _everything(session, member_id) -> dict:
    return {
        "members": _count(session, Member),
        "contacts": _count(session, WecomContact),
        "bindings": _count(session, Binding, Binding.member_id == member_id),
        "tags": _count(session, MemberTag, MemberTag.member_id == member_id),
        "recruits": _count(session, CommissionRecruit, CommissionRecruit.member_id == member_id),
        "bounties": _count(
            session,
            CommissionEntry,
            CommissionEntry.source_type == "recruit",
            CommissionEntry.member_id == member_id,
        ),
        "tasks": _count(session, Task, Task.source == "wecom"),
    }


def _inbox(api, phone) -> set[str]:
    page = api.get(phone, "/api/v1/inbox").get_json()
    return {item["task"]["id"] for item in page["items"] + page["claimable"]}


def _events(session, change_type):
    session.expire_all()
    return session.scalars(select(WecomEvent).where(WecomEvent.change_type == change_type)).all()


def test_a_customer_adding_a_guide_is_recruited_tagged_and_welcomed_once(api, app, session, corp):
    _customer(corp, "wmLin0001", unionid="ou-lin-0001")
    members_before = _count(session, Member)
    fields = _adds(api, corp, "wmLin0001", times=4)  # WeCom retried it three times
    run_jobs(app)

    member = _member_of(session, "wmLin0001")
    guide = _staff(session, GUIDE)
    assert member is not None and member.name == "林小姐" and member.unionid == "ou-lin-0001"
    assert member.guide_id == guide.id and member.source_channel == "wecom"
    contact = session.scalar(select(WecomContact).where(WecomContact.member_id == member.id))
    assert (contact.userid, contact.guide_id, contact.status) == (ZHANG, guide.id, "active")
    way = session.scalar(select(WecomContactWay).where(WecomContactWay.state == STATE))
    assert contact.contact_way_id == way.id and contact.state == STATE
    assert int(contact.added_at.timestamp()) == fields["CreateTime"]
    binding = session.scalar(select(Binding).where(Binding.member_id == member.id))
    assert binding.reason == "recruited" and binding.guide_id == guide.id
    tags = session.scalars(select(MemberTag).where(MemberTag.member_id == member.id)).all()
    assert [t.source for t in tags] == ["wecom_channel"]  # zhang-card's 户外
    recruit = session.scalar(
        select(CommissionRecruit).where(CommissionRecruit.member_id == member.id)
    )
    assert (recruit.state, recruit.source, recruit.guide_id) == ("counted", "wecom", guide.id)
    # The welcome went out with the event's own welcome_code, once.
    assert corp.fake.calls[WELCOME_PATH] == 1
    sent = [r for r in corp.fake.requests if r[0] == WELCOME_PATH]
    assert fields["WelcomeCode"] in sent[0][2].decode()
    assert corp.fake.corps[CORP_ID].follows[(ZHANG, "wmLin0001")].welcome_sent
    event = _events(session, "add_external_contact")[0]
    assert event.state == "done" and event.result["welcome"] == "sent"
    assert event.result["recruited"] is True

    once = _everything(session, member.id)
    assert once["members"] == members_before + 1
    assert once["contacts"] == 1 and once["bindings"] == 1 and once["tags"] == 1
    assert once["recruits"] == 1 and once["bounties"] == 1 and once["tasks"] == 0

    # A replay of the done event (processed again, as after a replay): nothing more.
    for _ in range(3):
        session.get(WecomEvent, event.id).state = "pending"
        session.flush()
        assert wecom_events.process(session, event.id) == "done"
        session.flush()
    assert _everything(session, member.id) == once
    assert corp.fake.calls[WELCOME_PATH] == 1
    assert session.get(WecomEvent, event.id).result["replay"] is True


def test_two_customers_in_the_same_second_are_two_members(api, app, session, corp):
    _customer(corp, "wmA", name="甲")
    _customer(corp, "wmB", name="乙")
    first = corp.fake.customer_adds(CORP_ID, ZHANG, "wmA", state=STATE)
    second = corp.fake.customer_adds(CORP_ID, ZHANG, "wmB", state=STATE)
    second["CreateTime"] = first["CreateTime"]
    for fields in (first, second, first, second):
        _deliver(api, corp, fields)
    run_jobs(app)
    a, b = _member_of(session, "wmA"), _member_of(session, "wmB")
    assert a and b and a.id != b.id and (a.name, b.name) == ("甲", "乙")
    assert _count(session, WecomContact) == 2
    assert corp.fake.calls[WELCOME_PATH] == 2


def test_a_known_unionid_is_the_same_member_and_a_staff_phone_is_no_recruit(
    api, app, session, corp
):
    tenant_id = _tenant_id(session)
    known = create_member(
        session, tenant_id=tenant_id, unionid="ou-known", name="", source_channel="store_scan"
    )
    # Someone with a staff member's phone (OTHER_GUIDE's), never bound, adds GUIDE.
    staff_like = create_member(
        session,
        tenant_id=tenant_id,
        unionid="ou-staff",
        phone=OTHER_GUIDE,
        source_channel="store_scan",
    )
    session.flush()
    before = _count(session, Member)
    _customer(corp, "wmKnown", name="老顾客", unionid="ou-known")
    _customer(corp, "wmStaff", name="同事", unionid="ou-staff")
    _adds(api, corp, "wmKnown")
    _adds(api, corp, "wmStaff")
    run_jobs(app)
    assert _count(session, Member) == before  # no duplicate
    assert _member_of(session, "wmKnown").id == known.id
    assert session.get(Member, known.id).name == "老顾客"  # an empty name is filled
    states = dict(
        session.execute(
            select(CommissionRecruit.member_id, CommissionRecruit.state).where(
                CommissionRecruit.member_id.in_([known.id, staff_like.id])
            )
        ).all()
    )
    assert states == {known.id: "counted", staff_like.id: "staff"}
    assert (
        _count(
            session,
            CommissionEntry,
            CommissionEntry.member_id == staff_like.id,
            CommissionEntry.source_type == "recruit",
        )
        == 0
    )


def test_another_tenants_state_records_the_relationship_without_attribution(
    api, app, session, corp
):
    rival_id = _tenant_id(session, "rival")
    rival_code = session.scalar(select(ScanCode).where(ScanCode.tenant_id == rival_id))
    session.add(
        WecomContactWay(
            tenant_id=rival_id, state="gd:rival", code_id=rival_code.id if rival_code else None
        )
    )
    session.flush()
    _customer(corp, "wmX")
    _customer(corp, "wmY")
    _adds(api, corp, "wmX", state="gd:rival")
    _adds(api, corp, "wmY", state="nothing-at-all")
    run_jobs(app)
    for external_userid, state in (("wmX", "gd:rival"), ("wmY", "nothing-at-all")):
        member = _member_of(session, external_userid)
        contact = session.scalar(select(WecomContact).where(WecomContact.member_id == member.id))
        assert contact.contact_way_id is None and contact.state == state
        assert member.guide_id == _staff(session, GUIDE).id  # still the guide's customer
        assert _count(session, MemberTag, MemberTag.member_id == member.id) == 0
    assert corp.fake.calls[WELCOME_PATH] == 0  # no code, no welcome of ours


def test_a_late_or_refused_welcome_becomes_a_greeting_task(api, app, session, corp):
    _customer(corp, "wmLate", name="迟到")
    _customer(corp, "wmExpired", name="过期")
    late = corp.fake.customer_adds(CORP_ID, ZHANG, "wmLate", state=STATE)
    late["CreateTime"] = int(time.time()) - 60  # stored a minute after it happened
    _deliver(api, corp, late)
    run_jobs(app)
    assert corp.fake.calls[WELCOME_PATH] == 0  # not even tried: the code is dead
    _adds(api, corp, "wmExpired")
    corp.fake.advance(25)  # WeCom's clock says the 20 s are over: 41050
    run_jobs(app)
    assert corp.fake.calls[WELCOME_PATH] == 1
    results = [e.result["welcome"] for e in _events(session, "add_external_contact")]
    assert sorted(results) == ["task", "task"]
    guide = _staff(session, GUIDE)
    tasks = session.scalars(select(Task).where(Task.source == "wecom")).all()
    assert {t.assignee_id for t in tasks} == {guide.id}
    assert sorted(t.title for t in tasks) == ["问候新客户 过期", "问候新客户 迟到"]
    assert {t.id for t in tasks} <= _inbox(api, GUIDE)


def test_a_rate_limited_get_is_retried_later_and_done(database, connection, session, corp):
    app = create_app(make_config(database, WECOM_EVENT_RETRY_SECONDS=0.05), bind=connection)
    api = ApiClient(app.test_client())
    _customer(corp, "wmBusy")
    corp.fake.fail_next(GET_PATH, 45033)
    _adds(api, corp, "wmBusy")
    run_jobs(app)
    (event,) = _events(session, "add_external_contact")
    assert event.state == "done" and event.attempts == 1
    assert event.error is None  # the failure is history once done
    assert corp.fake.calls[GET_PATH] == 2
    assert _member_of(session, "wmBusy") is not None


@pytest.mark.parametrize("break_tokens", ["expire_tokens", "invalidate_tokens"])
def test_an_expired_or_invalid_token_is_refreshed_once(api, app, session, corp, break_tokens):
    _customer(corp, "wmT1")
    _customer(corp, "wmT2")
    _adds(api, corp, "wmT1")
    run_jobs(app)
    tokens = corp.fake.calls["/cgi-bin/gettoken"]
    getattr(corp.fake, break_tokens)()  # 42001 / 40014 from now on for that token
    _adds(api, corp, "wmT2")
    run_jobs(app)
    assert corp.fake.calls["/cgi-bin/gettoken"] == tokens + 1
    assert [e.state for e in _events(session, "add_external_contact")] == ["done", "done"]
    assert _member_of(session, "wmT2") is not None


def test_a_guide_deleting_a_customer_alerts_that_stores_manager_and_hq(api, app, session, corp):
    _customer(corp, "wmGone", name="流失")
    _adds(api, corp, "wmGone")
    run_jobs(app)
    fields = corp.fake.guide_deletes_customer(CORP_ID, ZHANG, "wmGone")
    _deliver(api, corp, fields, times=2)
    run_jobs(app)
    member = _member_of(session, "wmGone")
    contact = session.scalar(select(WecomContact).where(WecomContact.member_id == member.id))
    assert contact.status == "deleted_by_guide" and contact.ended_at is not None
    assert member.guide_id == _staff(session, GUIDE).id  # the manager decides

    for phone in (HQ, MANAGER):
        items = api.get(phone, "/api/v1/wecom/alerts").get_json()["items"]
        assert [(a["kind"], a["member_id"], a["customer_name"]) for a in items] == [
            ("deleted_by_guide", member.id, "流失")
        ]
    assert api.get(SH002_MANAGER, "/api/v1/wecom/alerts").get_json()["items"] == []
    assert api.get(RIVAL_HQ, "/api/v1/wecom/alerts").get_json()["items"] == []
    assert api.get(GUIDE, "/api/v1/wecom/alerts").status_code == 403
    assert api.get(HQ, "/api/v1/wecom/alerts?bogus=1").status_code == 422

    manager = _staff(session, MANAGER)
    (task,) = session.scalars(select(Task).where(Task.assignee_id == manager.id)).all()
    assert task.source == "wecom" and "删除了客户" in task.title
    assert task.id in _inbox(api, MANAGER)
    assert task.id not in _inbox(api, GUIDE)


def test_a_customer_deleting_the_guide_ends_the_contact_and_feeds_a_win_back(
    api, app, session, corp
):
    _customer(corp, "wmLost", name="走了")
    _adds(api, corp, "wmLost")
    run_jobs(app)
    _deliver(api, corp, corp.fake.customer_deletes_guide(CORP_ID, ZHANG, "wmLost"))
    run_jobs(app)
    member = _member_of(session, "wmLost")
    contact = session.scalar(select(WecomContact).where(WecomContact.member_id == member.id))
    assert contact.status == "deleted_by_customer" and contact.ended_at is not None
    binding = session.scalar(
        select(Binding).where(Binding.member_id == member.id, Binding.ended_at.is_(None))
    )
    assert binding.guide_id == _staff(session, GUIDE).id and binding.lost_at is not None

    created = api.post(
        HQ,
        "/api/v1/sop-rules",
        json={
            "name": "挽回删除导购的会员",
            "trigger": "contact_lost",
            "steps": [{"days": 1, "title": "挽回", "due_days": 2}],
        },
    )
    assert created.status_code == 201, created.get_json()
    rule = session.get(SopRule, created.get_json()["id"])
    tick(session, tenant_id=member.tenant_id, now=utcnow() + timedelta(days=1))
    tick(session, tenant_id=member.tenant_id, now=utcnow() + timedelta(days=1))  # once
    tasks = session.scalars(select(Task).where(Task.sop_rule_id == rule.id)).all()
    assert len(tasks) == 1
    assert tasks[0].assignee_id is None and tasks[0].store_id == member.store_id

    # They add the guide again: the contact is active again and the loss is cleared.
    _adds(api, corp, "wmLost")
    run_jobs(app)
    session.expire_all()
    assert session.get(WecomContact, contact.id).status == "active"
    assert session.get(Binding, binding.id).lost_at is None
    assert _count(session, CommissionRecruit, CommissionRecruit.member_id == member.id) == 1


def test_an_edit_refreshes_the_remark(api, app, session, corp):
    _customer(corp, "wmEdit", name="改")
    _adds(api, corp, "wmEdit")
    run_jobs(app)
    _deliver(api, corp, corp.fake.customer_edits(CORP_ID, ZHANG, "wmEdit", remark="爱跑步"))
    # And an edit of a customer we never saw added: recorded, not recruited.
    _customer(corp, "wmOld", name="旧客")
    corp.fake.customer_adds(CORP_ID, CHEN, "wmOld")  # before we were connected
    _deliver(api, corp, corp.fake.customer_edits(CORP_ID, CHEN, "wmOld", remark="老朋友"))
    run_jobs(app)
    member = _member_of(session, "wmEdit")
    contact = session.scalar(select(WecomContact).where(WecomContact.member_id == member.id))
    assert contact.remark == "爱跑步"
    old = _member_of(session, "wmOld")
    assert old.guide_id == _staff(session, OTHER_GUIDE).id and old.name == "旧客"
    assert _count(session, CommissionRecruit, CommissionRecruit.member_id == old.id) == 0


def test_syncing_existing_customers_twice_gives_the_same_rows(api, app, session, corp):
    fake = corp.fake
    for n in range(130):  # two pages of 100 for GUIDE
        _customer(corp, f"wmS{n:04d}", name=f"顾客{n}")
        fake.customer_adds(CORP_ID, ZHANG, f"wmS{n:04d}")
    for n in range(5):
        _customer(corp, f"wmC{n:04d}")
        fake.customer_adds(CORP_ID, CHEN, f"wmC{n:04d}")
    before = _count(session, Member)

    assert api.post(GUIDE, "/api/v1/wecom/customer-syncs", json={}).status_code == 403
    started = api.post(HQ, "/api/v1/wecom/customer-syncs", json={})
    assert started.status_code == 202, started.get_json()
    run_jobs(app)
    job = api.get(HQ, started.headers["Location"]).get_json()
    assert job["state"] == "succeeded", job
    assert job["result"]["customers"] == 135 and job["result"]["members_created"] == 135
    assert job["progress"]["done"] == 135 and job["progress"]["unit"] == "customers"
    assert fake.calls["/cgi-bin/externalcontact/batch/get_by_user"] == 2
    counts = (_count(session, Member), _count(session, WecomContact))
    assert counts == (before + 135, 135)
    assert _member_of(session, "wmS0129").guide_id == _staff(session, GUIDE).id
    assert _count(session, CommissionRecruit, CommissionRecruit.source == "wecom") == 0

    again = api.post(HQ, "/api/v1/wecom/customer-syncs", json={})
    run_jobs(app)
    job = api.get(HQ, again.headers["Location"]).get_json()
    assert job["state"] == "succeeded" and job["result"]["members_created"] == 0
    assert (_count(session, Member), _count(session, WecomContact)) == counts

    unknown = api.post(HQ, "/api/v1/wecom/customer-syncs", json={"userid": "nobody"})
    assert unknown.status_code == 422 and "userid" in unknown.get_json()["errors"]
    assert api.post(RIVAL_HQ, "/api/v1/wecom/customer-syncs", json={}).status_code == 409


def test_welcomes_are_hqs_and_never_another_tenants(api, session, corp):
    code_id = corp.code.id
    assert api.get(HQ, f"/api/v1/wecom/welcomes/{code_id}").get_json()["text"]
    assert api.get(MANAGER, f"/api/v1/wecom/welcomes/{code_id}").status_code == 403
    assert api.get(RIVAL_HQ, f"/api/v1/wecom/welcomes/{code_id}").status_code == 404
    bad = api.client.put(
        f"/api/v1/wecom/welcomes/{code_id}",
        json={"material_id": "nope"},
        headers=api.headers(HQ),
    )
    assert bad.status_code == 422 and "material_id" in bad.get_json()["errors"]


# --- killed processes: stored events are applied exactly once by a real worker ----------


@pytest.fixture
def live(live_database, queue_backend, tmp_path, fake_wecom):  # noqa: F811 (fixtures)
    """A live app (commits stay) on the demo brand, its corp on the fake, and a way to
    start real `flask jobs worker` processes on the same database and queue."""
    from tests import wecom_helpers as w

    jobs_url, name = queue_url(queue_backend, tmp_path), f"wecom-{uuid.uuid4().hex}"
    app = create_app(make_config(live_database, JOBS_URL=jobs_url, JOBS_NAME=name))
    api = ApiClient(app.test_client())
    maker = app.extensions["guideapp"]["sessionmaker"]
    fake_wecom.add_corp(w.CORP_ID, w.CONTACT_SECRET, w.AGENT_ID, w.AGENT_SECRET)
    w.configure(api, HQ)
    fake_wecom.add_user(CORP_ID, ZHANG)
    with maker() as session, transaction(session):
        _staff(session, GUIDE).wecom_userid = ZHANG
        code = session.scalar(select(ScanCode).where(ScanCode.code == "zhang-card"))
        if _count(session, WecomContactWay, WecomContactWay.state == STATE) == 0:
            session.add(WecomContactWay(tenant_id=code.tenant_id, state=STATE, code_id=code.id))
        code_id = code.id
    api.client.put(
        f"/api/v1/wecom/welcomes/{code_id}", json={"text": "欢迎！"}, headers=api.headers(HQ)
    )
    env = {
        "WECOM_API_BASE": fake_wecom.url,
        "WECHAT_SECRETS_KEY": app.config["WECHAT_SECRETS_KEY"],
        "WECOM_EVENT_RETRY": "0.2",
    }
    workers = []

    def worker():
        process = start_worker(live_database.url, jobs_url, name, **env)
        workers.append(process)
        return process

    yield SimpleNamespace(app=app, api=api, maker=maker, corp=w.Corp(fake_wecom), worker=worker)
    for process in workers:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    queue_of(app).flush()
    app.extensions["guideapp"]["engine"].dispose()


def _wait(read, until, timeout=90.0, what="the events"):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if until(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {value}"
        time.sleep(0.1)


def _applied(maker, external_userids) -> dict:
    with maker() as session:
        members = [_member_of(session, e) for e in external_userids]
        ids = [m.id for m in members if m is not None]
        return {
            "members": len(ids),
            "identities": _count(
                session, MemberIdentity, MemberIdentity.value.in_(external_userids)
            ),
            "contacts": _count(
                session, WecomContact, WecomContact.external_userid.in_(external_userids)
            ),
            "bindings": _count(session, Binding, Binding.member_id.in_(ids)),
            "recruits": _count(session, CommissionRecruit, CommissionRecruit.member_id.in_(ids)),
            "bounties": _count(
                session,
                CommissionEntry,
                CommissionEntry.member_id.in_(ids),
                CommissionEntry.source_type == "recruit",
            ),
        }


def _pending(maker, external_userids) -> list[str]:
    with maker() as session:
        rows = session.scalars(
            select(WecomEvent).where(WecomEvent.change_type == "add_external_contact")
        ).all()
        return [e.state for e in rows if e.fields.get("ExternalUserID") in external_userids]


def test_events_stored_by_a_process_that_died_are_applied_once_by_a_worker(live):
    """Stored and answered, then the process is gone before anything processed them (no
    worker ran): a worker started later applies each exactly once."""
    corp, api = live.corp, live.api
    customers = [f"wmKill{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for external_userid in customers:
        corp.fake.add_customer(CORP_ID, external_userid, "顾客")
        fields = corp.fake.customer_adds(CORP_ID, ZHANG, external_userid, state=STATE)
        _deliver(api, corp, fields, times=3)  # and WeCom's retries
    assert _pending(live.maker, customers) == ["pending", "pending"]
    assert _applied(live.maker, customers)["members"] == 0

    live.worker()
    _wait(lambda: _pending(live.maker, customers), lambda s: s == ["done", "done"])
    assert _applied(live.maker, customers) == {
        "members": 2,
        "identities": 2,
        "contacts": 2,
        "bindings": 2,
        "recruits": 2,
        "bounties": 2,
    }
    assert corp.fake.calls[WELCOME_PATH] <= 2


def test_a_worker_killed_while_wecom_answers_slowly_leaves_it_for_the_next_once(live):
    corp, api = live.corp, live.api
    external_userid = f"wmSlow{uuid.uuid4().hex[:8]}"
    corp.fake.add_customer(CORP_ID, external_userid, "慢")
    corp.fake.delay_next(GET_PATH, 15)
    _deliver(api, corp, corp.fake.customer_adds(CORP_ID, ZHANG, external_userid, state=STATE))

    first = live.worker()
    _wait(lambda: corp.fake.calls[GET_PATH], lambda n: n >= 1, what="the slow get")
    os.killpg(first.pid, signal.SIGKILL)  # mid-event: inside its unit of work
    first.wait(timeout=30)
    assert _pending(live.maker, [external_userid]) == ["pending"]
    assert _applied(live.maker, [external_userid])["members"] == 0

    live.worker()
    _wait(lambda: _pending(live.maker, [external_userid]), lambda s: s == ["done"])
    assert _applied(live.maker, [external_userid]) == {
        "members": 1,
        "identities": 1,
        "contacts": 1,
        "bindings": 1,
        "recruits": 1,
        "bounties": 1,
    }
    with live.maker() as session:
        rows = session.scalars(
            select(WecomEvent).where(WecomEvent.change_type == "add_external_contact")
        ).all()
        (welcome,) = [
            e.result["welcome"] for e in rows if e.fields["ExternalUserID"] == external_userid
        ]
        greeted = _count(session, Task, Task.dedupe_key.like("wecom:greet:%"))
    # The welcome went once, or (had the restart taken too long) the guide greets by hand.
    assert (welcome, corp.fake.calls[WELCOME_PATH]) in {("sent", 1), ("task", 0)}
    assert greeted <= 1


def test_the_sync_command_imports_one_guides_customers_idempotently(app, session, corp):
    for n in range(3):
        _customer(corp, f"wmCli{n}", name=f"命令{n}")
        corp.fake.customer_adds(CORP_ID, CHEN, f"wmCli{n}")
    runner = app.test_cli_runner()
    args = ["wecom", "sync-customers", "--tenant", "stride", "--userid", CHEN]
    first = runner.invoke(args=args)
    assert first.exit_code == 0, first.output
    assert "3 customers" in first.output and "3 members_created" in first.output
    again = runner.invoke(args=args)
    assert again.exit_code == 0 and "0 members_created" in again.output, again.output
    assert _member_of(session, "wmCli2").guide_id == _staff(session, OTHER_GUIDE).id
    assert runner.invoke(args=["wecom", "sync-customers", "--tenant", "nobody"]).exit_code != 0
