"""The public scan endpoint: routing, coordinates, validity, members, round-robin, limits."""

import math
import threading
from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp import create_app
from guideapp.db import utcnow
from guideapp.members.signals import member_recruited
from guideapp.members.models import Binding, Member, MemberTag, Tag
from guideapp.org.geo import StoreRow, distance_m, nearest_open_store_brute_force
from guideapp.org.models import Staff, Store, Tenant
from guideapp.scans import counters
from guideapp.scans.models import GuideRotation, Scan, ScanCode, ScanRateWindow
from tests.conftest import GUIDE, HQ, MP_APPID, OTHER_GUIDE, make_config
from tests.factories import member_of, staff_by_phone, store_by_code

WGS84 = (31.2304, 121.4737)  # People's Square, as wx.getLocation reports it
GCJ02 = (31.228458, 121.478223)  # the same place on a Chinese map
LBS, STORE_CODE, GUIDE_CODE = "stride-lbs", "sh001-desk", "zhang-card"
CITIES = [
    (31.23, 121.47),
    (30.27, 120.16),
    (32.05, 118.78),
    (39.91, 116.40),
    (23.13, 113.27),
    (22.54, 114.06),
    (24.47, 118.09),
    (36.65, 117.00),
]


@pytest.fixture
def app(database, connection):
    return create_app(
        make_config(database, SCAN_RATE_PER_ADDRESS=100_000, SCAN_RATE_PER_CODE=100_000),
        bind=connection,
    )


def scan(api, code=LBS, address="10.0.0.1", **body):
    return api.client.post(
        "/api/v1/scans", json={"code": code, **body}, environ_base={"REMOTE_ADDR": address}
    )


def phone_code(fake, phone):
    """What the mini-program's getPhoneNumber button gives for `phone`, on the fake."""
    return fake.phone_code(MP_APPID, phone=phone)


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def stride_stores(session):
    tenant = session.scalar(select(Tenant.id).where(Tenant.slug == "stride"))
    return [
        StoreRow(*row)
        for row in session.execute(
            select(
                Store.id,
                Store.code,
                Store.lat,
                Store.lng,
                Store.service_radius_m,
                Store.state,
            ).where(Store.tenant_id == tenant)
        )
    ]


def test_wgs84_and_gcj02_of_one_place_route_alike(api, session):
    by_wgs = scan(api, lat=WGS84[0], lng=WGS84[1]).get_json()
    by_gcj = scan(api, lat=GCJ02[0], lng=GCJ02[1], coord_system="gcj02").get_json()
    assert by_wgs["resolution"] == by_gcj["resolution"] == "nearest"
    assert by_wgs["store"]["id"] == by_gcj["store"]["id"]
    assert abs(by_wgs["store"]["distance_m"] - by_gcj["store"]["distance_m"]) < 5
    store = session.get(Store, by_gcj["store"]["id"])
    assert by_gcj["store"]["distance_m"] == pytest.approx(
        distance_m(*GCJ02, store.lat, store.lng), abs=0.1
    )
    # The WGS-84 position is kept converted: taken as GCJ-02 it would be ~470 m off.
    converted = session.get(Scan, by_wgs["scan_id"])
    assert distance_m(converted.lat, converted.lng, *GCJ02) < 1.0
    assert distance_m(*WGS84, *GCJ02) > 400 and converted.coord_system == "wgs84"
    assert by_gcj["wecom_contact_qr_url"] == store.wecom_contact_qr_url
    assert by_gcj["community_qr_url"] == store.community_qr_url
    assert by_gcj["guide"]["id"] in set(
        session.scalars(select(Staff.id).where(Staff.store_id == store.id, Staff.role == "guide"))
    )
    recorded = session.get(Scan, by_gcj["scan_id"])
    assert (recorded.store_id, recorded.outcome, recorded.client_address) == (
        store.id,
        "nearest",
        "10.0.0.1",
    )
    assert recorded.lat == pytest.approx(GCJ02[0]) and recorded.channel == "poster"


def test_closed_store_is_skipped_for_the_nearest_open_one(api, session):
    closed = store_by_code(session, "SH003")
    assert closed.state == "closed"
    answer = scan(api, lat=closed.lat, lng=closed.lng, coord_system="gcj02").get_json()
    expected = nearest_open_store_brute_force(
        stride_stores(session), lat=closed.lat, lng=closed.lng
    )
    assert answer["store"]["id"] == expected.store_id != closed.id


def test_service_radius_and_fallbacks(api, session):
    xm = store_by_code(session, "XM001")  # radius 3000 m; XM002 (5000 m) is 3.5 km away
    north = (xm.lat + 0.02, xm.lng - 0.06)  # ~6.5 km away from both: outside their radii
    assert min(distance_m(*north, s.lat, s.lng) for s in stride_stores(session)) > 5000
    far = scan(api, lat=north[0], lng=north[1], coord_system="gcj02").get_json()
    assert far["resolution"] == "fallback_url" and far["store"] is None
    assert far["fallback_url"] == "https://stride.example.cn/stores"
    nowhere = scan(api).get_json()  # the page sent no position (permission refused)
    assert nowhere["resolution"] == "fallback_url"

    code = session.scalar(select(ScanCode).where(ScanCode.code == LBS))
    code.fallback_store_id = xm.id
    session.flush()
    routed = scan(api, lat=north[0], lng=north[1], coord_system="gcj02").get_json()
    assert routed["resolution"] == "fallback_store" and routed["store"]["id"] == xm.id
    assert routed["store"]["distance_m"] > 5000

    sh001 = store_by_code(session, "SH001")
    assert api.post(HQ, f"/api/v1/stores/{sh001.id}/close").status_code == 200
    desk = scan(api, STORE_CODE).get_json()  # the store code's store closed: its fallback
    assert desk["resolution"] == "fallback_store"
    assert desk["store"]["id"] == store_by_code(session, "SH002").id


@pytest.mark.parametrize(
    "body",
    [
        {"lat": 91, "lng": 121.0},
        {"lat": 31.0, "lng": -181},
        {"lat": "north", "lng": 121.0},
        {"lat": True, "lng": 121.0},
        {"lat": 31.0},
        {"lat": 31.0, "lng": 121.0, "coord_system": "bd09"},
        {"lat": 31.0, "lng": 121.0, "extra": 1},
        {},
        # The identity a page asserts is gone (issue 16): only codes WeChat vouches for.
        {"openid": "o-typed"},
        {"unionid": "u-typed"},
        {"phone": "13612340001"},
        {"oauth_code": "a", "login_code": "b"},
        {"login_code": "b", "lead_phone": "13612340001"},
        {"login_code": ""},
    ],
)
def test_bad_input_is_422_and_writes_nothing(api, session, body):
    before = count(session, Scan), count(session, ScanRateWindow), count(session, Member)
    response = scan(api, **body) if body else api.client.post("/api/v1/scans", json={})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"]
    assert (count(session, Scan), count(session, ScanRateWindow), count(session, Member)) == before


@pytest.mark.parametrize(
    "raw",
    [
        '{"code": "stride-lbs", "lat": NaN, "lng": 121.0}',
        '{"code": "stride-lbs", "lat": 31.0, "lng": Infinity}',
        '{"code": "stride-lbs", "lat": 31.0, "lng": 1e999}',
    ],
)
def test_nan_and_infinity_are_refused(api, session, raw):
    before = count(session, Scan)
    response = api.client.post("/api/v1/scans", data=raw, content_type="application/json")
    assert response.status_code == 422
    assert count(session, Scan) == before


def test_unknown_expired_and_future_codes_are_refused_clearly(api, session, wechat_apps):
    assert scan(api, "no-such-code").status_code == 404
    code = session.scalar(select(ScanCode).where(ScanCode.code == LBS))
    code.valid_until = utcnow() - timedelta(days=1)
    session.flush()
    expired = scan(api, lat=GCJ02[0], lng=GCJ02[1])
    assert expired.status_code == 410 and "expired" in expired.get_json()["message"]
    code.valid_until, code.valid_from = None, utcnow() + timedelta(days=2)
    session.flush()
    assert scan(api).status_code == 403
    code.valid_from, code.active = None, False
    session.flush()
    assert scan(api).status_code == 410
    outcomes = session.scalars(select(Scan.outcome).where(Scan.code_id == code.id)).all()
    assert sorted(outcomes) == ["expired", "inactive", "not_yet_valid"]  # still attributed
    assert scan(api, phone_code=phone_code(wechat_apps, "13612340001")).status_code == 410
    assert count(session, Member, Member.phone == "13612340001") == 0
    assert wechat_apps.calls["/wxa/business/getuserphonenumber"] == 0  # not exchanged


def test_a_known_member_gets_the_codes_tags(api, session, wechat_apps):
    member = member_of(session, OTHER_GUIDE)
    running = session.scalar(
        select(Tag.id).where(Tag.name == "跑步", Tag.tenant_id == member.tenant_id)
    )
    session.execute(MemberTag.__table__.delete().where(MemberTag.member_id == member.id))
    for _ in range(2):  # idempotent
        assert scan(api, phone_code=phone_code(wechat_apps, member.phone)).status_code == 200
    rows = session.scalars(select(MemberTag).where(MemberTag.member_id == member.id)).all()
    assert [(r.tag_id, r.source, r.source_ref) for r in rows] == [(running, "scan_channel", LBS)]
    assert session.scalars(select(Scan.member_id).where(Scan.member_id == member.id)).all()


@pytest.fixture
def recruits():
    """What `member_recruited` announces during the test: (member id, guide id, source)."""
    heard = []

    def listen(session, **kw):
        heard.append((kw["member"].id, kw["guide"].id, kw["source"]))

    with member_recruited.connected_to(listen):
        yield heard


def test_a_new_person_is_recruited_to_the_routed_guide(api, session, recruits, wechat_apps):
    heard = recruits
    answer = scan(
        api,
        lat=GCJ02[0],
        lng=GCJ02[1],
        coord_system="gcj02",
        phone_code=phone_code(wechat_apps, "13612340002"),
        login_code=wechat_apps.login_code(MP_APPID, openid="o-new-1"),
    ).get_json()
    member = session.scalar(select(Member).where(Member.phone == "13612340002"))
    assert member.source_channel == "store_scan"
    assert (member.guide_id, member.store_id) == (answer["guide"]["id"], answer["store"]["id"])
    assert heard == [(member.id, answer["guide"]["id"], "scan")]
    binding = session.scalar(select(Binding).where(Binding.member_id == member.id))
    assert binding.reason == "recruited" and binding.locked_until > utcnow()
    assert session.get(Scan, answer["scan_id"]).member_created is True
    again = scan(
        api,
        lat=GCJ02[0],
        lng=GCJ02[1],
        coord_system="gcj02",
        login_code=wechat_apps.login_code(MP_APPID, openid="o-new-1"),
    )
    assert again.get_json()["guide"]["id"] == member.guide_id  # their own guide, not a turn
    assert len(heard) == 1 and count(session, Member, Member.phone == "13612340002") == 1


def test_a_locked_binding_is_kept_and_the_scan_recorded(api, session, recruits, wechat_apps):
    heard = recruits
    member = member_of(session, OTHER_GUIDE)  # bound in Beijing
    member.binding_locked_until = utcnow() + timedelta(days=30)
    session.flush()
    answer = scan(api, GUIDE_CODE, phone_code=phone_code(wechat_apps, member.phone)).get_json()
    session.expire_all()
    assert answer["guide"]["id"] == staff_by_phone(session, GUIDE).id
    assert member.guide_id == staff_by_phone(session, OTHER_GUIDE).id
    recorded = session.get(Scan, answer["scan_id"])
    assert (recorded.member_id, recorded.bound, recorded.member_created) == (
        member.id,
        False,
        False,
    )
    assert heard == []
    # Once the lock has run out, a guide's personal code takes the member over.
    member.binding_locked_until = utcnow() - timedelta(days=1)
    session.flush()
    assert (
        session.get(
            Scan,
            scan(api, GUIDE_CODE, phone_code=phone_code(wechat_apps, member.phone)).get_json()[
                "scan_id"
            ],
        ).bound
        is True
    )
    session.expire_all()
    assert member.guide_id == staff_by_phone(session, GUIDE).id and heard == []


def test_staff_scanning_a_code_are_not_recruited(api, session, recruits, wechat_apps):
    heard = recruits
    before = count(session, Member)
    for phone in (GUIDE, HQ):
        answer = scan(api, GUIDE_CODE, phone_code=phone_code(wechat_apps, phone)).get_json()
        assert answer["guide"]["name"] == "张导购"
        assert session.get(Scan, answer["scan_id"]).member_id is None
    assert count(session, Member) == before and heard == []
    assert scan(api, lead_phone="12345").status_code == 422


def test_round_robin_spreads_the_stores_guides_evenly(api, session):
    sh001 = store_by_code(session, "SH001")
    guides = session.scalars(
        select(Staff.id).where(
            Staff.store_id == sh001.id, Staff.role == "guide", Staff.state == "active"
        )
    ).all()
    picks = [scan(api, STORE_CODE).get_json()["guide"]["id"] for _ in range(3 * len(guides))]
    assert Counter(picks) == {g: 3 for g in guides}
    assert picks[: len(guides)] == picks[len(guides) : 2 * len(guides)]  # strictly in turn


def test_turns_are_unique_under_concurrency(database):
    """Eight workers on their own connections take 200 turns: no turn given twice."""
    with Session(database.engine) as session:
        tenant_id, store_id = session.execute(
            select(Store.tenant_id, Store.id).where(Store.code == "XM002")
        ).first()
    turns, lock = [], threading.Lock()

    def worker():
        for _ in range(25):
            with Session(database.engine) as s:
                turn = counters.next_turn(s, tenant_id=tenant_id, store_id=store_id)
                s.commit()
            with lock:
                turns.append(turn)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(turns) == list(range(1, 201))
    finally:
        with Session(database.engine) as s:
            s.execute(GuideRotation.__table__.delete().where(GuideRotation.store_id == store_id))
            s.commit()


def test_rate_limits_per_address_and_per_code(database, connection, session):
    app = create_app(
        make_config(
            database, SCAN_RATE_PER_ADDRESS=3, SCAN_RATE_PER_CODE=5, SCAN_RATE_WINDOW_SECONDS=86_400
        ),
        bind=connection,
    )
    client = app.test_client()

    def post(address, code=LBS):
        return client.post(
            "/api/v1/scans", json={"code": code}, environ_base={"REMOTE_ADDR": address}
        )

    assert [post("10.1.1.1").status_code for _ in range(3)] == [200] * 3
    refused = post("10.1.1.1", STORE_CODE)
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 86_400
    assert refused.get_json()["errors"] == {"rate_limit": ["addr"]}
    assert post("10.1.1.2").status_code == 200  # another address, same code: 4 of 5
    assert post("10.1.1.3").status_code == 200
    assert post("10.1.1.4").status_code == 429  # the code's own limit
    assert post("10.1.1.4", STORE_CODE).status_code == 200
    assert (
        count(
            session,
            Scan,
            Scan.code_id == session.scalar(select(ScanCode.id).where(ScanCode.code == LBS)),
        )
        == 5
    )


def test_old_rate_windows_are_pruned_once_per_window_by_the_shared_key(session):
    now = utcnow()
    session.add(ScanRateWindow(key="addr:10.9.9.9", window_start=60, hits=99))
    session.flush()
    counters.hit(session, limits=[("addr:10.9.9.7", 5), ("code:x", 9)], window_s=60, now=now)
    assert "addr:10.9.9.9" not in session.scalars(select(ScanRateWindow.key)).all()

    # Later in the window a new address's first hit sweeps nothing (the code's was the sweep).
    session.add(ScanRateWindow(key="addr:10.9.9.9", window_start=60, hits=99))
    session.flush()
    counters.hit(session, limits=[("addr:10.9.9.8", 5), ("code:x", 9)], window_s=60, now=now)
    assert "addr:10.9.9.9" in session.scalars(select(ScanRateWindow.key)).all()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(city=st.sampled_from(CITIES), dlat=st.floats(-0.15, 0.15), dlng=st.floats(-0.15, 0.15))
def test_routing_equals_the_brute_force_reference(api, session, city, dlat, dlng):
    lat, lng = city[0] + dlat, city[1] + dlng
    answer = scan(api, lat=lat, lng=lng, coord_system="gcj02").get_json()
    expected = nearest_open_store_brute_force(stride_stores(session), lat=lat, lng=lng)
    if expected is None:
        assert answer["resolution"] == "fallback_url"
    else:
        assert answer["store"]["id"] == expected.store_id
        assert math.isclose(answer["store"]["distance_m"], expected.distance_m, abs_tol=0.06)
