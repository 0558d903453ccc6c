"""Stores and staff through the API: HQ and managers manage, guides read, bad input refused."""

import pytest

from tests.conftest import GUIDE, HQ, MANAGER

NEW_STORE = {
    "code": "WH001",
    "name": "Stride 武汉楚河汉街店",
    "region_id": None,
    "city": "武汉",
    "address": "武汉市武昌区楚河汉街",
    "lat": 30.5559,
    "lng": 114.3428,
    "service_radius_m": 4000,
    "tags": ["street", "running"],
    "opening_hours": {"mon": ["10:00", "22:00"], "tue": None},
    "wecom_contact_qr_url": "https://wework.example.cn/qr/WH001",
}


@pytest.fixture
def east_region(api):
    regions = api.get(HQ, "/api/v1/regions").get_json()["items"]
    return next(r for r in regions if r["code"] == "east")


def test_hq_creates_edits_closes_and_reopens_a_store(api, east_region):
    created = api.post(HQ, "/api/v1/stores", json={**NEW_STORE, "region_id": east_region["id"]})
    assert created.status_code == 201, created.get_json()
    store = created.get_json()
    assert store["state"] == "open" and store["tags"] == ["running", "street"]
    edited = api.patch(HQ, f"/api/v1/stores/{store['id']}", json={"name": "Stride 武汉旗舰店"})
    assert edited.status_code == 200 and edited.get_json()["name"] == "Stride 武汉旗舰店"
    closed = api.post(HQ, f"/api/v1/stores/{store['id']}/close")
    assert closed.get_json()["state"] == "closed"
    assert api.post(HQ, f"/api/v1/stores/{store['id']}/close").status_code == 409
    assert api.post(HQ, f"/api/v1/stores/{store['id']}/reopen").get_json()["state"] == "open"


def test_wgs84_store_coordinates_are_kept_in_gcj02(api, east_region):
    body = {
        **NEW_STORE,
        "region_id": east_region["id"],
        "coord_system": "wgs84",
        "lat": 31.2304,
        "lng": 121.4737,
    }
    store = api.post(HQ, "/api/v1/stores", json=body).get_json()
    assert store["lat"] == pytest.approx(31.2285, abs=0.0005)
    assert store["lng"] == pytest.approx(121.4782, abs=0.0005)


@pytest.mark.parametrize(
    "field,value",
    [
        ("lat", 91),
        ("lng", "east"),
        ("service_radius_m", 0),
        ("code", "has space"),
        ("opening_hours", {"mon": ["22:00", "10:00"]}),
        ("opening_hours", {"someday": None}),
        ("wecom_contact_qr_url", "not a url"),
        ("coord_system", "bd09"),
        ("colour", "red"),
    ],
)
def test_bad_store_input_names_the_field_and_writes_nothing(api, east_region, field, value):
    before = len(api.get(HQ, "/api/v1/stores?limit=200").get_json()["items"])
    response = api.post(
        HQ, "/api/v1/stores", json={**NEW_STORE, "region_id": east_region["id"], field: value}
    )
    assert response.status_code == 422
    body = response.get_json()
    assert field in body["errors"] and body["message"]
    assert len(api.get(HQ, "/api/v1/stores?limit=200").get_json()["items"]) == before


def test_duplicate_store_code_is_a_conflict(api, east_region):
    response = api.post(
        HQ, "/api/v1/stores", json={**NEW_STORE, "code": "SH001", "region_id": east_region["id"]}
    )
    assert response.status_code == 409
    assert "code" in response.get_json()["errors"]


def test_unknown_region_is_a_field_error(api):
    response = api.post(HQ, "/api/v1/stores", json={**NEW_STORE, "region_id": "nope"})
    assert response.status_code == 422 and "region_id" in response.get_json()["errors"]


def test_manager_edits_own_store_contact_details_but_nothing_else(api):
    store_id = api.get(MANAGER, "/api/v1/me").get_json()["store"]["id"]
    ok = api.patch(
        MANAGER,
        f"/api/v1/stores/{store_id}",
        json={"opening_hours": {"mon": ["09:30", "21:30"]}, "phone": "021-1"},
    )
    assert ok.status_code == 200
    assert (
        api.patch(
            MANAGER, f"/api/v1/stores/{store_id}", json={"service_radius_m": 90000}
        ).status_code
        == 403
    )
    assert api.post(MANAGER, f"/api/v1/stores/{store_id}/close").status_code == 403
    assert api.post(MANAGER, "/api/v1/stores", json=NEW_STORE).status_code in (403, 422)


def test_guide_reads_own_store_but_cannot_edit(api):
    store_id = api.get(GUIDE, "/api/v1/me").get_json()["store"]["id"]
    assert api.get(GUIDE, f"/api/v1/stores/{store_id}").status_code == 200
    assert api.patch(GUIDE, f"/api/v1/stores/{store_id}", json={"phone": "1"}).status_code == 403


def test_store_list_is_keyset_paged_without_gaps_or_repeats(api):
    seen, cursor = [], None
    while True:
        url = "/api/v1/stores?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(HQ, url).get_json()
        seen += [s["code"] for s in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) >= 40


def test_bad_cursor_and_limit_are_field_errors(api):
    assert api.get(HQ, "/api/v1/stores?cursor=garbage!").status_code == 422
    assert api.get(HQ, "/api/v1/stores?limit=0").status_code == 422
    assert api.get(HQ, "/api/v1/stores?limit=5000").status_code == 422


def test_store_filters(api):
    shanghai = api.get(HQ, "/api/v1/stores?city=上海&limit=200").get_json()["items"]
    assert shanghai and all(s["city"] == "上海" for s in shanghai)
    closed = api.get(HQ, "/api/v1/stores?state=closed").get_json()["items"]
    assert closed and all(s["state"] == "closed" for s in closed)
    flagships = api.get(HQ, "/api/v1/stores?tag=flagship&limit=200").get_json()["items"]
    assert flagships and all("flagship" in s["tags"] for s in flagships)


def test_manager_adds_a_guide_to_own_store_only(api):
    me = api.get(MANAGER, "/api/v1/me").get_json()
    guide = {
        "name": "新导购",
        "phone": "13911112222",
        "role": "guide",
        "store_id": me["store"]["id"],
        "password": "welcome-to-stride-2026",
    }
    created = api.post(MANAGER, "/api/v1/staff", json=guide)
    assert created.status_code == 201, created.get_json()
    assert (
        api.client.post(
            "/api/v1/auth/login",
            json={"phone": "13911112222", "password": "welcome-to-stride-2026"},
        ).status_code
        == 200
    )
    promote = api.patch(
        MANAGER, f"/api/v1/staff/{created.get_json()['id']}", json={"role": "store_manager"}
    )
    assert promote.status_code == 403
    other_store = api.get(HQ, "/api/v1/stores?city=北京").get_json()["items"][0]["id"]
    elsewhere = api.post(
        MANAGER, "/api/v1/staff", json={**guide, "phone": "13911113333", "store_id": other_store}
    )
    assert elsewhere.status_code == 422  # the manager cannot even see that store
    manager = api.post(
        MANAGER, "/api/v1/staff", json={**guide, "phone": "13911114444", "role": "store_manager"}
    )
    assert manager.status_code == 403


@pytest.mark.parametrize(
    "body,field",
    [
        ({"phone": "12345"}, "phone"),
        ({"role": "boss"}, "role"),
        ({"password": "short"}, "password"),
    ],
)
def test_bad_staff_input(api, body, field):
    me = api.get(MANAGER, "/api/v1/me").get_json()
    guide = {
        "name": "新导购",
        "phone": "13911112222",
        "role": "guide",
        "store_id": me["store"]["id"],
        "password": "welcome-to-stride-2026",
        **body,
    }
    response = api.post(HQ, "/api/v1/staff", json=guide)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert field in errors


def test_duplicate_staff_phone_is_a_conflict(api):
    me = api.get(MANAGER, "/api/v1/me").get_json()
    response = api.post(
        HQ,
        "/api/v1/staff",
        json={
            "name": "x",
            "phone": GUIDE,
            "role": "guide",
            "store_id": me["store"]["id"],
            "password": "welcome-to-stride-2026",
        },
    )
    assert response.status_code == 409


def test_staff_who_left_cannot_leave_twice_and_nobody_signs_themselves_off(api):
    me = api.get(MANAGER, "/api/v1/me").get_json()
    guide_id = api.get(GUIDE, "/api/v1/me").get_json()["staff"]["id"]
    assert api.post(MANAGER, f"/api/v1/staff/{guide_id}/leave").status_code == 200
    assert api.post(MANAGER, f"/api/v1/staff/{guide_id}/leave").status_code == 409
    assert api.post(HQ, f"/api/v1/staff/{me['staff']['id']}/leave").status_code == 200
    hq_id = api.get(HQ, "/api/v1/me").get_json()["staff"]["id"]
    assert api.post(HQ, f"/api/v1/staff/{hq_id}/leave").status_code == 409


def test_staff_list_scoped_and_filtered(api):
    store_staff = api.get(MANAGER, "/api/v1/staff?limit=200").get_json()["items"]
    store_id = api.get(MANAGER, "/api/v1/me").get_json()["store"]["id"]
    assert store_staff and all(s["store_id"] == store_id for s in store_staff)
    guides = api.get(HQ, "/api/v1/staff?role=guide&limit=200").get_json()["items"]
    assert len(guides) == 160 and all(s["role"] == "guide" for s in guides)
