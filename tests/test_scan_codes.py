"""Channel codes over HTTP: who creates what, listing, switching off, QR images, statistics."""

import io

import pytest
import segno
from sqlalchemy import select

from guideapp import create_app
from guideapp.members.models import Tag
from guideapp.scans.models import ScanCode
from tests.conftest import GUIDE, HQ, MP_APPID, MANAGER, OTHER_GUIDE, make_config
from tests.factories import staff_by_phone, store_by_code

BASE = "https://s.stride.example.cn/s/"


@pytest.fixture
def app(database, connection):
    return create_app(
        make_config(database, SCAN_BASE_URL=BASE, SCAN_RATE_PER_ADDRESS=100_000), bind=connection
    )


def code_id(session, code):
    return session.scalar(select(ScanCode.id).where(ScanCode.code == code))


def test_hq_creates_any_kind_managers_only_their_stores(api, session):
    tag = session.scalar(select(Tag.id).where(Tag.name == "瑜伽"))
    sh001, bj001 = store_by_code(session, "SH001"), store_by_code(session, "BJ001")
    lbs = api.post(
        HQ,
        "/api/v1/codes",
        json={
            "kind": "lbs",
            "channel": "receipt",
            "name": "小票",
            "tag_ids": [tag],
            "fallback_store_id": sh001.id,
            "valid_until": "2030-01-01T00:00:00+08:00",
        },
    )
    assert lbs.status_code == 201, lbs.get_json()
    body = lbs.get_json()
    assert len(body["code"]) == 10 and body["url"] == BASE + body["code"]
    assert body["tag_ids"] == [tag] and body["valid_until"].startswith("2029-12-31T16:00")
    assert (
        api.post(MANAGER, "/api/v1/codes", json={"kind": "lbs", "channel": "sms"}).status_code
        == 403
    )
    own = api.post(
        MANAGER,
        "/api/v1/codes",
        json={"kind": "store", "channel": "table_card", "store_id": sh001.id},
    )
    assert own.status_code == 201 and own.get_json()["store_id"] == sh001.id
    assert (
        api.post(
            MANAGER,
            "/api/v1/codes",
            json={"kind": "store", "channel": "table_card", "store_id": bj001.id},
        ).status_code
        == 422  # an id in the body: unknown and not yours read the same
    )
    guide = staff_by_phone(session, GUIDE)
    personal = api.post(
        MANAGER, "/api/v1/codes", json={"kind": "guide", "channel": "sms", "guide_id": guide.id}
    )
    assert personal.status_code == 201 and personal.get_json()["store_id"] == sh001.id
    other = staff_by_phone(session, OTHER_GUIDE)
    assert (
        api.post(
            MANAGER, "/api/v1/codes", json={"kind": "guide", "channel": "sms", "guide_id": other.id}
        ).status_code
        == 422
    )
    assert (
        api.post(
            GUIDE, "/api/v1/codes", json={"kind": "guide", "channel": "sms", "guide_id": guide.id}
        ).status_code
        == 403
    )
    assert (
        api.post(
            HQ, "/api/v1/codes", json={"kind": "lbs", "channel": "sms", "tag_ids": ["nope"]}
        ).status_code
        == 422
    )
    assert api.post(HQ, "/api/v1/codes", json={"kind": "lbs", "channel": "fax"}).status_code == 422


def test_lists_are_scoped_and_paged(api, session):
    hq_codes = api.get(HQ, "/api/v1/codes?limit=2").get_json()
    assert len(hq_codes["items"]) == 2 and hq_codes["next_cursor"]
    rest = api.get(HQ, f"/api/v1/codes?limit=2&cursor={hq_codes['next_cursor']}").get_json()
    assert {c["code"] for c in hq_codes["items"] + rest["items"]} >= {
        "stride-lbs",
        "sh001-desk",
        "zhang-card",
    }
    assert {c["code"] for c in api.get(MANAGER, "/api/v1/codes").get_json()["items"]} == {
        "sh001-desk",
        "zhang-card",
    }
    assert [c["code"] for c in api.get(GUIDE, "/api/v1/codes").get_json()["items"]] == [
        "zhang-card"
    ]
    assert api.get(OTHER_GUIDE, "/api/v1/codes").get_json()["items"] == []
    assert [c["code"] for c in api.get(HQ, "/api/v1/codes?kind=lbs").get_json()["items"]] == [
        "stride-lbs"
    ]


def test_switching_a_code_off_and_on(api, session):
    desk = code_id(session, "sh001-desk")
    off = api.patch(MANAGER, f"/api/v1/codes/{desk}", json={"active": False})
    assert off.status_code == 200 and off.get_json()["active"] is False
    assert api.client.post("/api/v1/scans", json={"code": "sh001-desk"}).status_code == 410
    assert api.patch(MANAGER, f"/api/v1/codes/{desk}", json={"active": True}).status_code == 200
    assert api.client.post("/api/v1/scans", json={"code": "sh001-desk"}).status_code == 200
    lbs = code_id(session, "stride-lbs")
    assert api.get(MANAGER, f"/api/v1/codes/{lbs}").status_code == 404
    assert (
        api.patch(
            GUIDE, f"/api/v1/codes/{code_id(session, 'zhang-card')}", json={"active": False}
        ).status_code
        == 403
    )


@pytest.mark.parametrize("kind,mimetype", [("png", "image/png"), ("svg", "image/svg+xml")])
def test_qr_images_hold_the_codes_url(api, session, kind, mimetype):
    response = api.get(GUIDE, f"/api/v1/codes/{code_id(session, 'zhang-card')}/qr.{kind}")
    assert response.status_code == 200 and response.mimetype == mimetype
    expected = io.BytesIO()
    segno.make(BASE + "zhang-card", error="m", micro=False).save(
        expected, kind=kind, scale=8, border=4, **({"xmldecl": True} if kind == "svg" else {})
    )
    assert response.data == expected.getvalue()
    assert response.data.startswith(b"\x89PNG" if kind == "png" else b"<?xml")
    assert (
        api.client.get(f"/api/v1/codes/{code_id(session, 'zhang-card')}/qr.{kind}").status_code
        == 401
    )


def test_statistics_count_scans_new_members_and_bindings(api, session, wechat_apps):
    def phone(number):  # what the mini-program's getPhoneNumber button gives, on the fake
        return {"phone_code": wechat_apps.phone_code(MP_APPID, phone=number)}

    scans = [
        (
            "stride-lbs",
            {"lat": 31.2285, "lng": 121.4785, "coord_system": "gcj02", **phone("13612349001")},
        ),
        ("stride-lbs", {"lat": 39.9355, "lng": 116.4549, "coord_system": "gcj02"}),
        ("stride-lbs", {"lat": 45.0, "lng": 100.0}),
        ("sh001-desk", phone("13612349002")),
        ("sh001-desk", phone("13612349002")),
        ("zhang-card", {"lead_phone": "13612349003"}),  # a lead: no member
    ]
    for code, body in scans:
        assert api.client.post("/api/v1/scans", json={"code": code, **body}).status_code == 200
    by_code = api.get(HQ, "/api/v1/scans/stats?group_by=code").get_json()
    rows = {r["code"]: r for r in by_code["rows"]}
    assert {k: rows["stride-lbs"][k] for k in ("scans", "new_members", "bindings")} == {
        "scans": 3,
        "new_members": 1,
        "bindings": 1,
    }
    assert {k: rows["sh001-desk"][k] for k in ("scans", "new_members", "bindings")} == {
        "scans": 2,
        "new_members": 1,
        "bindings": 1,
    }
    assert by_code["totals"] == {"scans": 6, "new_members": 2, "bindings": 2, "refused": 0}
    by_channel = api.get(HQ, "/api/v1/scans/stats?group_by=channel,day").get_json()
    assert {r["channel"]: r["scans"] for r in by_channel["rows"]} == {
        "poster": 3,
        "table_card": 2,
        "package_card": 1,
    }
    by_store = api.get(HQ, "/api/v1/scans/stats?group_by=store").get_json()["rows"]
    sh001 = store_by_code(session, "SH001")
    assert {r["store_id"]: r["scans"] for r in by_store}[sh001.id] == 3
    assert {r["store_id"] for r in by_store} >= {None}  # the fallback URL scan: no store
    mine = api.get(MANAGER, "/api/v1/scans/stats?group_by=store").get_json()
    assert [r["store_id"] for r in mine["rows"]] == [sh001.id] and mine["totals"]["scans"] == 3
    one = api.get(HQ, f"/api/v1/codes/{code_id(session, 'sh001-desk')}/stats").get_json()
    assert one["totals"]["scans"] == 2 and len(one["rows"]) == 1 and one["rows"][0]["day"]
    assert api.get(HQ, "/api/v1/scans/stats?group_by=colour").status_code == 422
    assert api.get(HQ, "/api/v1/scans/stats?from=2026-02-01&to=2026-01-01").status_code == 422
    past = api.get(HQ, "/api/v1/scans/stats?from=2020-01-01&to=2020-01-31").get_json()
    assert past["rows"] == [] and past["totals"]["scans"] == 0
