"""WeCom 「联系我」 ways of our codes, on the fake WeCom (tests/fake_wecom.py): made, updated
and deleted by the wecom.contact_ways job (never inside the request), shown by the scan,
capped per guide and day with a backup, scoped, and retried while WeCom is busy."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from guideapp import create_app
from guideapp.db import utcnow
from guideapp.members.models import Member
from guideapp.org.models import Staff, Store, Tenant
from guideapp.scans.models import ScanCode
from guideapp.tasks.scheduler import tick
from guideapp.wecom.contact_ways import recheck_after_add
from guideapp.wecom.models import WecomContact, WecomContactWay
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE, RIVAL_HQ, ApiClient, make_config
from tests.test_jobs import run_jobs
from tests.wecom_helpers import CORP_ID, Corp, configure

ADD = "/cgi-bin/externalcontact/add_contact_way"
UPDATE = "/cgi-bin/externalcontact/update_contact_way"
DELETE = "/cgi-bin/externalcontact/del_contact_way"
WAYS = "/api/v1/wecom/contact-ways"


@pytest.fixture
def quick_app(database, connection):
    """Retries after 0.05 s, so a test can watch WeCom come back."""
    return create_app(make_config(database, WECOM_EVENT_RETRY_SECONDS=0.05), bind=connection)


@pytest.fixture
def quick(quick_app):
    return ApiClient(quick_app.test_client())


@pytest.fixture
def corp(quick, fake_wecom):
    from tests import wecom_helpers as w

    fake_wecom.add_corp(CORP_ID, w.CONTACT_SECRET, w.AGENT_ID, w.AGENT_SECRET)
    configure(quick, HQ)
    return Corp(fake_wecom)


def _staff(session, phone: str) -> Staff:
    return session.scalar(select(Staff).where(Staff.phone == phone))


def _in_wecom(session, corp: Corp, phone: str, userid: str, **kwargs) -> Staff:
    """The guide has a WeCom account in the corp (the fake) and our staff names it."""
    staff = _staff(session, phone)
    staff.wecom_userid = userid
    session.flush()
    corp.fake.add_user(CORP_ID, userid, staff.name, **kwargs)
    return staff


def _sh001_guides(session) -> list[Staff]:
    store = session.scalar(select(Store).where(Store.code == "SH001"))
    store.opening_hours = {}  # hours unknown: nobody is off duty by the clock in these tests
    session.flush()
    return list(
        session.scalars(
            select(Staff)
            .where(Staff.store_id == store.id, Staff.role == "guide", Staff.state == "active")
            .order_by(Staff.id)
        )
    )


def _code(api, phone=HQ, **data) -> dict:
    made = api.post(phone, "/api/v1/codes", json={"channel": "poster", **data})
    assert made.status_code == 201, made.get_json()
    return made.get_json()


def _way(session, code_id: str) -> WecomContactWay:
    session.expire_all()
    return session.scalar(select(WecomContactWay).where(WecomContactWay.code_id == code_id))


def _ways(corp: Corp) -> dict:
    return corp.fake.corps[CORP_ID].contact_ways


def test_a_guide_code_gets_a_single_user_way_made_by_the_job(quick, quick_app, session, corp):
    guide = _in_wecom(session, corp, GUIDE, "zhang")
    code = _code(quick, kind="guide", guide_id=guide.id, name="张导购 包裹卡 2026 冬季")
    assert corp.fake.calls[ADD] == 0  # not inside HQ's request
    way = _way(session, code["id"])
    assert way.config_id is None and way.sync_due_at is not None

    run_jobs(quick_app)
    way = _way(session, code["id"])
    [made] = _ways(corp).values()
    assert (made.type, made.scene, made.user, made.skip_verify) == (1, 2, ["zhang"], True)
    assert made.state == way.state and len(way.state) <= 30 and way.state.startswith("gw")
    assert made.remark == "张导购 包裹卡 2026 冬季"
    assert way.config_id == made.config_id and way.qr_code == made.qr_code
    listed = quick.get(HQ, WAYS, query_string={"code_id": code["id"]}).get_json()["items"]
    assert [(w["state"], w["config_id"], w["qr_code"], w["userids"]) for w in listed] == [
        (way.state, made.config_id, made.qr_code, ["zhang"])
    ]
    assert listed[0]["sync_pending"] is False and listed[0]["last_error"] is None


def test_switching_off_or_expiring_deletes_the_way_and_switching_on_makes_it_again(
    quick, quick_app, session, corp
):
    guide = _in_wecom(session, corp, GUIDE, "zhang")
    code = _code(quick, kind="guide", guide_id=guide.id)
    run_jobs(quick_app)
    first = _way(session, code["id"]).config_id

    off = quick.patch(HQ, f"/api/v1/codes/{code['id']}", json={"active": False})
    assert off.status_code == 200
    run_jobs(quick_app)
    way = _way(session, code["id"])
    assert first not in _ways(corp) and corp.fake.calls[DELETE] == 1
    assert way.retired_at is not None and way.qr_code is None

    on = quick.patch(HQ, f"/api/v1/codes/{code['id']}", json={"active": True})
    assert on.status_code == 200
    run_jobs(quick_app)
    again = _way(session, code["id"])
    assert again.retired_at is None and again.config_id in _ways(corp)
    assert _ways(corp)[again.config_id].state == again.state  # the same state: attribution

    past = (utcnow() - timedelta(days=1)).isoformat()
    expired = quick.patch(HQ, f"/api/v1/codes/{code['id']}", json={"valid_until": past})
    assert expired.status_code == 200
    run_jobs(quick_app)
    assert not _ways(corp) and _way(session, code["id"]).retired_at is not None


def test_a_store_code_gets_a_multi_user_way_and_its_rule_updates_it(
    quick, quick_app, session, corp
):
    guides = _sh001_guides(session)
    assert len(guides) >= 3
    for n, guide in enumerate(guides[:3]):
        _in_wecom(session, corp, guide.phone, f"sh001g{n}")
    code = _code(quick, kind="store", store_id=guides[0].store_id, name="SH001 收银台")
    run_jobs(quick_app)
    [made] = _ways(corp).values()
    assert made.type == 2 and made.user == ["sh001g0", "sh001g1", "sh001g2"]

    rule = quick.client.put(
        f"/api/v1/wecom/codes/{code['id']}/way-rule",
        json={"guide_ids": [guides[2].id, guides[0].id]},
        headers=quick.headers(MANAGER),  # the store's manager keeps the store's codes
    )
    assert rule.status_code == 200, rule.get_json()
    assert rule.get_json()["guide_ids"] == [guides[2].id, guides[0].id]
    assert corp.fake.calls[UPDATE] == 0
    run_jobs(quick_app)
    assert made.user == ["sh001g2", "sh001g0"] and corp.fake.calls[UPDATE] == 1
    assert _way(session, code["id"]).userids == ["sh001g2", "sh001g0"]

    other_store = quick.client.put(
        f"/api/v1/wecom/codes/{code['id']}/way-rule",
        json={"guide_ids": [_staff(session, OTHER_GUIDE).id]},  # a BJ001 guide
        headers=quick.headers(HQ),
    )
    assert other_store.status_code == 422 and "guide_ids" in other_store.get_json()["errors"]


def test_the_scan_answer_shows_the_codes_wecom_qr_once_made(quick, quick_app, session, corp):
    guide = _in_wecom(session, corp, GUIDE, "zhang")
    code = _code(quick, kind="guide", guide_id=guide.id)
    way = _way(session, code["id"])
    way.sync_due_at = None  # as if its job had not run yet and nobody had woken it
    session.flush()

    before = quick.client.post("/api/v1/scans", json={"code": code["code"]})
    assert before.status_code == 200, before.get_json()
    assert before.get_json()["wecom_qr_code"] is None
    assert corp.fake.calls[ADD] == 0  # the scan never calls WeCom

    _way(session, code["id"]).sync_due_at = utcnow()
    session.flush()
    run_jobs(quick_app)
    after = quick.client.post("/api/v1/scans", json={"code": code["code"]}).get_json()
    assert after["wecom_qr_code"] == _way(session, code["id"]).qr_code is not None
    assert after["guide"]["id"] == guide.id


def test_the_guide_an_lbs_code_routes_to_gets_an_own_way_on_first_need(
    quick, quick_app, session, corp
):
    guides = _sh001_guides(session)
    for n, guide in enumerate(guides):
        _in_wecom(session, corp, guide.phone, f"lbs{n}")
    near = {"code": "stride-lbs", "lat": 31.2300, "lng": 121.4460, "coord_system": "wgs84"}
    first = quick.client.post("/api/v1/scans", json=near).get_json()
    assert first["resolution"] == "nearest" and first["wecom_qr_code"] is None
    routed = first["guide"]["id"]
    run_jobs(quick_app)
    session.expire_all()
    own = session.scalar(
        select(WecomContactWay).where(
            WecomContactWay.guide_id == routed, WecomContactWay.code_id.is_(None)
        )
    )
    assert own.kind == "single" and _ways(corp)[own.config_id].type == 1
    for _ in range(len(guides) + 1):  # the store's guides take turns
        answer = quick.client.post("/api/v1/scans", json=near).get_json()
        if answer["guide"]["id"] == routed:
            assert answer["wecom_qr_code"] == own.qr_code
            break
    else:
        pytest.fail("the routed guide never came round again")


def _received(session, way: WecomContactWay, guide: Staff, n: int, *, at) -> None:
    """n customers added the guide through this way (what the event handlers record)."""
    members = session.scalars(
        select(Member.id).where(Member.tenant_id == way.tenant_id).limit(n)
    ).all()
    for member_id in members:
        session.add(
            WecomContact(
                tenant_id=way.tenant_id,
                member_id=member_id,
                guide_id=guide.id,
                userid=guide.wecom_userid,
                external_userid=f"wmCap{uuid.uuid4().hex[:20]}",
                contact_way_id=way.id,
                state=way.state,
                added_at=at,
            )
        )
    session.flush()


def _tick(app, tenant_id: str) -> None:
    """`flask scheduler tick` for one tenant: its own transaction, committed."""
    with app.extensions["guideapp"]["sessionmaker"]() as s:
        tick(s, tenant_id=tenant_id)
        s.commit()


def test_a_capped_guide_is_dropped_the_backup_named_and_all_back_the_next_day(
    quick, quick_app, session, corp
):
    guides = _sh001_guides(session)[:2]
    for n, guide in enumerate(guides):
        _in_wecom(session, corp, guide.phone, f"cap{n}")
    backup = _in_wecom(session, corp, OTHER_GUIDE, "backup")
    code = _code(quick, kind="store", store_id=guides[0].store_id)
    rule = quick.client.put(
        f"/api/v1/wecom/codes/{code['id']}/way-rule",
        json={
            "guide_ids": [g.id for g in guides],
            "daily_cap": 2,
            "backup_guide_id": backup.id,
        },
        headers=quick.headers(HQ),
    )
    assert rule.status_code == 200, rule.get_json()
    run_jobs(quick_app)
    way = _way(session, code["id"])
    made = _ways(corp)[way.config_id]
    assert made.user == ["cap0", "cap1"]

    now = utcnow()
    _received(session, way, guides[0], 1, at=now)
    recheck_after_add(session, contact_way_id=way.id)  # under the cap: nothing to do
    assert _way(session, code["id"]).sync_due_at is None
    _received(session, way, guides[0], 1, at=now)  # the cap: 2 today
    _received(session, way, guides[1], 1, at=now)
    _tick(quick_app, way.tenant_id)
    run_jobs(quick_app)
    assert made.user == ["cap1"]

    # Both capped: the backup takes over, as soon as the event handler has recorded it.
    with quick_app.extensions["guideapp"]["sessionmaker"]() as s:
        _received(s, way, guides[1], 1, at=now)
        recheck_after_add(s, contact_way_id=way.id)
        s.commit()
    run_jobs(quick_app)
    assert made.user == ["backup"]
    assert _way(session, code["id"]).userids == ["backup"]

    # The next day: what they received counts for yesterday, and both are back.
    session.execute(
        update(WecomContact)
        .where(WecomContact.contact_way_id == way.id)
        .values(added_at=now - timedelta(days=1))
    )
    _tick(quick_app, way.tenant_id)
    run_jobs(quick_app)
    assert made.user == ["cap0", "cap1"]


def test_guides_off_duty_by_their_stores_hours_give_way_to_the_backup(
    quick, quick_app, session, corp
):
    from zoneinfo import ZoneInfo

    from guideapp.org.hours import WEEKDAYS

    guides = _sh001_guides(session)[:2]
    for n, guide in enumerate(guides):
        _in_wecom(session, corp, guide.phone, f"duty{n}")
    backup = _in_wecom(session, corp, OTHER_GUIDE, "backup")
    code = _code(quick, kind="store", store_id=guides[0].store_id)
    put = quick.client.put(
        f"/api/v1/wecom/codes/{code['id']}/way-rule",
        json={"backup_guide_id": backup.id},
        headers=quick.headers(HQ),
    )
    assert put.status_code == 200
    run_jobs(quick_app)
    way = _way(session, code["id"])
    made = _ways(corp)[way.config_id]
    assert set(made.user) >= {"duty0", "duty1"}

    zone = session.get_one(Tenant, way.tenant_id).timezone
    today = WEEKDAYS[utcnow().astimezone(ZoneInfo(zone)).weekday()]
    store = session.get_one(Store, guides[0].store_id)
    store.opening_hours = {today: None}  # closed all day today
    session.flush()
    _tick(quick_app, way.tenant_id)
    run_jobs(quick_app)
    assert made.user == ["backup"]

    store.opening_hours = {today: ["00:00", "24:00"]}
    session.flush()
    _tick(quick_app, way.tenant_id)
    run_jobs(quick_app)
    assert set(made.user) >= {"duty0", "duty1"} and "backup" not in made.user


def test_who_sees_which_ways(quick, quick_app, session, corp):
    zhang = _in_wecom(session, corp, GUIDE, "zhang")
    chen = _in_wecom(session, corp, OTHER_GUIDE, "chen")  # BJ001
    mine = _code(quick, kind="guide", guide_id=zhang.id)
    theirs = _code(quick, kind="guide", guide_id=chen.id)
    store = _code(quick, kind="store", store_id=chen.store_id)
    run_jobs(quick_app)

    def seen(phone):
        answer = quick.get(phone, WAYS)
        assert answer.status_code == 200, answer.get_json()
        return {w["code_id"] for w in answer.get_json()["items"]}

    assert {mine["id"], theirs["id"], store["id"]} <= seen(HQ)
    assert seen(MANAGER) == {mine["id"]}  # SH001's manager: SH001's codes
    assert seen(GUIDE) == {mine["id"]}
    assert seen(OTHER_GUIDE) == {theirs["id"]}
    assert seen(RIVAL_HQ) == set()
    for phone, expected in ((RIVAL_HQ, 404), (MANAGER, 404), (GUIDE, 404)):
        refused = quick.client.put(
            f"/api/v1/wecom/codes/{store['id']}/way-rule",
            json={"daily_cap": 5},
            headers=quick.headers(phone),
        )
        assert refused.status_code == expected, (phone, refused.get_json())
    assert quick.get(RIVAL_HQ, f"/api/v1/wecom/codes/{store['id']}/way-rule").status_code == 404
    assert quick.post(MANAGER, f"{WAYS}/sync").status_code == 403
    guide_code = quick.client.put(
        f"/api/v1/wecom/codes/{mine['id']}/way-rule",
        json={"daily_cap": 5},
        headers=quick.headers(HQ),
    )
    assert guide_code.status_code == 422


def test_wecom_busy_never_fails_the_edit_and_the_job_retries(quick, quick_app, session, corp):
    guide = _in_wecom(session, corp, GUIDE, "zhang")
    corp.fake.fail_next(ADD, 45033, times=2)  # 接口调用超过限制, twice
    code = _code(quick, kind="guide", guide_id=guide.id)  # 201 whatever WeCom says
    run_jobs(quick_app)
    way = _way(session, code["id"])
    assert corp.fake.calls[ADD] == 3
    assert way.config_id in _ways(corp) and way.last_error is None and way.sync_attempts == 0

    corp.fake.fail_next(DELETE, 45009, times=1)
    off = quick.patch(HQ, f"/api/v1/codes/{code['id']}", json={"active": False})
    assert off.status_code == 200
    run_jobs(quick_app)
    assert not _ways(corp) and _way(session, code["id"]).retired_at is not None


def test_wecom_refusals_are_kept_on_the_way_in_words(quick, quick_app, session, corp):
    unknown = _staff(session, GUIDE)
    unknown.wecom_userid = "nobody"  # not in the corp
    session.flush()
    unverified = _in_wecom(session, corp, OTHER_GUIDE, "chen", verified=False)
    first = _code(quick, kind="guide", guide_id=unknown.id)
    second = _code(quick, kind="guide", guide_id=unverified.id)
    run_jobs(quick_app)
    ways = {w["code_id"]: w for w in quick.get(HQ, WAYS).get_json()["items"]}
    assert ways[first["id"]]["last_errcode"] == 60111
    assert "WeCom does not know a user id" in ways[first["id"]]["last_error"]
    assert "nobody" in ways[first["id"]]["last_error"]
    assert ways[second["id"]]["last_errcode"] == 40098
    assert "verify their real name" in ways[second["id"]]["last_error"]
    assert not ways[first["id"]]["sync_pending"] and ways[first["id"]]["config_id"] is None

    # Fixed in the staff record, HQ syncs all again: the way is made.
    unknown.wecom_userid = "zhang"
    session.flush()
    corp.fake.add_user(CORP_ID, "zhang", "张导购")
    job = quick.post(HQ, f"{WAYS}/sync")
    assert job.status_code == 202 and job.headers["Location"].startswith("/api/v1/jobs/")
    run_jobs(quick_app)
    way = _way(session, first["id"])
    assert way.config_id in _ways(corp) and way.last_error is None


def test_a_guide_without_a_wecom_user_id_gets_their_way_at_the_tick_after_one_is_set(
    quick, quick_app, session, corp
):
    guide = _staff(session, GUIDE)
    code = _code(quick, kind="guide", guide_id=guide.id)
    run_jobs(quick_app)
    [listed] = quick.get(HQ, WAYS, query_string={"code_id": code["id"]}).get_json()["items"]
    assert "has no WeCom user id" in listed["last_error"] and listed["config_id"] is None
    assert corp.fake.calls[ADD] == 0

    _in_wecom(session, corp, GUIDE, "zhang")
    _tick(quick_app, guide.tenant_id)
    run_jobs(quick_app)
    way = _way(session, code["id"])
    assert _ways(corp)[way.config_id].user == ["zhang"] and way.last_error is None


def test_no_wecom_configured_means_no_ways_and_no_qr(api, session):
    guide = _staff(session, GUIDE)
    code = _code(api, kind="guide", guide_id=guide.id)
    assert _way(session, code["id"]) is None
    answer = api.client.post("/api/v1/scans", json={"code": code["code"]}).get_json()
    assert answer["wecom_qr_code"] is None
    assert api.post(HQ, f"{WAYS}/sync").status_code == 409
    assert session.scalar(select(ScanCode.id).where(ScanCode.id == code["id"]))


def test_a_customer_added_through_the_way_drops_a_capped_guide_at_once(
    quick, quick_app, session, corp
):
    """End to end: the add_external_contact callback records the contact on the way its
    State names, and the handler's recheck drops the guide who reached the cap."""
    from tests.wecom_helpers import post_callback

    guides = _sh001_guides(session)[:2]
    for n, guide in enumerate(guides):
        _in_wecom(session, corp, guide.phone, f"cap{n}")
    code = _code(quick, kind="store", store_id=guides[0].store_id)
    rule = quick.client.put(
        f"/api/v1/wecom/codes/{code['id']}/way-rule",
        json={"guide_ids": [g.id for g in guides], "daily_cap": 1},
        headers=quick.headers(HQ),
    )
    assert rule.status_code == 200, rule.get_json()
    run_jobs(quick_app)
    way = _way(session, code["id"])
    made = _ways(corp)[way.config_id]
    assert made.user == ["cap0", "cap1"]

    corp.fake.add_customer(CORP_ID, external_userid="wmCapped0001", name="顾客", unionid=None)
    fields = corp.fake.customer_adds(CORP_ID, "cap0", "wmCapped0001", state=way.state)
    args, body = corp.callback(fields)
    assert post_callback(quick.client, args, body).get_data(as_text=True) == "success"
    run_jobs(quick_app)
    session.expire_all()
    contact = session.scalar(
        select(WecomContact).where(WecomContact.external_userid == "wmCapped0001")
    )
    assert contact.contact_way_id == way.id and contact.guide_id == guides[0].id
    assert made.user == ["cap1"]
    assert _way(session, code["id"]).userids == ["cap1"]
