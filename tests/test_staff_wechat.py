"""Staff log in with the mini-program (POST /auth/wechat, /auth/wechat/bind; HQ sees and
unbinds), and channel codes' mini-program codes (GET /codes/{id}/wxacode.png), against the
fake WeChat (tests/fake_wechat.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from guideapp import create_app
from guideapp.auth.models import AuthSession, LoginAttempt, StaffWechat
from guideapp.demo import DEMO_PASSWORD
from guideapp.wechat.models import MiniProgramCode
from tests.conftest import (
    GUIDE,
    HQ,
    MANAGER,
    MP_APPID,
    OTHER_GUIDE,
    RIVAL_HQ,
    ApiClient,
    make_config,
)
from tests.factories import staff_by_phone
from tests.scan_factories import make_code

LOGIN, BIND = "/api/v1/auth/wechat", "/api/v1/auth/wechat/bind"


@pytest.fixture
def app(database, connection, tmp_path):
    return create_app(make_config(database, UPLOAD_DIR=str(tmp_path / "up")), bind=connection)


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def footprint(session):
    return count(session, StaffWechat), count(session, AuthSession)


def wx_login(api, code, **extra):
    return api.client.post(LOGIN, json={"appid": MP_APPID, "code": code}, **extra)


def bind(api, code, **body):
    return api.client.post(BIND, json={"appid": MP_APPID, "code": code, **body})


def me(api, tokens):
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    return api.client.get("/api/v1/me", headers=headers)


def bound(api, wechat, openid="o-guide", phone=GUIDE):
    answer = bind(
        api, wechat.login_code(MP_APPID, openid=openid), phone=phone, password=DEMO_PASSWORD
    )
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


# --- log in, first use, bind ------------------------------------------------------------


def test_first_login_says_bind_then_binding_logs_in_and_later_codes_log_in(
    api, session, wechat_apps
):
    before = footprint(session)
    first = wx_login(api, wechat_apps.login_code(MP_APPID, openid="o-guide"))
    assert first.status_code == 409, first.get_json()
    assert first.get_json()["errors"] == {"code": ["wechat_not_bound"]}
    assert "/api/v1/auth/wechat/bind" in first.get_json()["message"]
    assert footprint(session) == before
    tokens = bound(api, wechat_apps)
    assert me(api, tokens).get_json()["staff"]["phone"] == GUIDE
    again = wx_login(api, wechat_apps.login_code(MP_APPID, openid="o-guide"))
    assert again.status_code == 200, again.get_json()
    assert set(again.get_json()) >= {"access_token", "refresh_token", "expires_in"}
    assert me(api, again.get_json()).get_json()["staff"]["phone"] == GUIDE
    refreshed = api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": again.get_json()["refresh_token"]}
    )
    assert refreshed.status_code == 200  # the same tokens as a password login


def test_binding_with_the_wechat_phone_code(api, session, wechat_apps):
    answer = bind(
        api,
        wechat_apps.login_code(MP_APPID, openid="o-mgr", unionid="u-mgr"),
        phone_code=wechat_apps.phone_code(MP_APPID, phone=MANAGER),
    )
    assert answer.status_code == 200, answer.get_json()
    assert me(api, answer.get_json()).get_json()["staff"]["phone"] == MANAGER
    row = session.scalar(select(StaffWechat))
    assert (row.staff_id, row.openid, row.unionid) == (
        staff_by_phone(session, MANAGER).id,
        "o-mgr",
        "u-mgr",
    )


def test_a_wrong_password_is_401_counted_and_no_code_is_spent(api, session, wechat_apps):
    code = wechat_apps.login_code(MP_APPID, openid="o-guide")
    before = footprint(session)
    answer = bind(api, code, phone=GUIDE, password="wrong")
    assert answer.status_code == 401
    assert footprint(session) == before
    assert count(session, LoginAttempt, LoginAttempt.phone == GUIDE) == 1
    assert wechat_apps.calls["/sns/jscode2session"] == 0
    assert bind(api, code, phone=GUIDE, password=DEMO_PASSWORD).status_code == 200


def test_a_phone_code_of_no_staff_member_is_401(api, session, wechat_apps):
    before = footprint(session)
    answer = bind(
        api,
        wechat_apps.login_code(MP_APPID, openid="o-x"),
        phone_code=wechat_apps.phone_code(MP_APPID, phone="13612349999"),
    )
    assert answer.status_code == 401 and "136****9999" in answer.get_json()["message"]
    assert footprint(session) == before
    # The rival brand's staff phone is no staff member's of ours either.
    rival = bind(
        api,
        wechat_apps.login_code(MP_APPID, openid="o-x"),
        phone="13700000003",
        password=DEMO_PASSWORD,
    )
    assert rival.status_code == 401
    assert footprint(session) == before


def test_one_wechat_one_staff_account_until_hq_unbinds(api, session, wechat_apps):
    bound(api, wechat_apps, openid="o-shared", phone=GUIDE)
    before = footprint(session)
    # The same WeChat onto another staff account: refused.
    taken = bind(
        api,
        wechat_apps.login_code(MP_APPID, openid="o-shared"),
        phone=OTHER_GUIDE,
        password=DEMO_PASSWORD,
    )
    assert taken.status_code == 409 and taken.get_json()["errors"] == {
        "code": ["wechat_bound_elsewhere"]
    }
    # Another WeChat onto the bound account: refused too.
    other = bind(
        api, wechat_apps.login_code(MP_APPID, openid="o-other"), phone=GUIDE, password=DEMO_PASSWORD
    )
    assert other.status_code == 409 and "phone" in other.get_json()["errors"]
    assert footprint(session) == before
    # Binding the same pair again just logs in.
    assert bound(api, wechat_apps, openid="o-shared", phone=GUIDE)["access_token"]
    # HQ unbinds: the WeChat may go to the other account.
    guide_id = staff_by_phone(session, GUIDE).id
    assert (
        api.client.delete(f"/api/v1/staff/{guide_id}/wechat", headers=api.headers(HQ)).status_code
        == 204
    )
    assert bound(api, wechat_apps, openid="o-shared", phone=OTHER_GUIDE)


@pytest.mark.parametrize("how", ["reused", "invalid"])
def test_a_used_or_invalid_code_is_422_and_binds_nobody(api, session, wechat_apps, how):
    code = wechat_apps.login_code(MP_APPID, openid="o-guide")
    if how == "reused":
        assert wx_login(api, code).status_code == 409  # exchanged once, not bound
    else:
        code = "0" * 32
    before = footprint(session)
    for response in (wx_login(api, code), bind(api, code, phone=GUIDE, password=DEMO_PASSWORD)):
        assert response.status_code == 422, response.get_json()
        assert list(response.get_json()["errors"]) == ["code"]
    assert footprint(session) == before


def test_wechat_busy_is_503_and_the_code_still_works(api, session, wechat_apps):
    bound(api, wechat_apps)
    code = wechat_apps.login_code(MP_APPID, openid="o-guide")
    wechat_apps.fail_next("/sns/jscode2session", -1)
    before = footprint(session)
    busy = wx_login(api, code)
    assert busy.status_code == 503 and busy.headers["Retry-After"]
    assert footprint(session) == before
    assert wx_login(api, code).status_code == 200


def test_refused_codes_are_throttled_per_address_before_wechat_is_asked(
    database, connection, session, wechat_apps
):
    app = create_app(make_config(database, LOGIN_MAX_FAILURES_PER_ADDRESS=3), bind=connection)
    api = ApiClient(app.test_client())
    away = {"environ_base": {"REMOTE_ADDR": "10.7.7.7"}}
    for _ in range(3):
        assert wx_login(api, "f" * 32, **away).status_code == 422
    calls = wechat_apps.calls["/sns/jscode2session"]
    good = wechat_apps.login_code(MP_APPID, openid="o-guide")
    blocked = wx_login(api, good, **away)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert wechat_apps.calls["/sns/jscode2session"] == calls  # WeChat not asked
    assert wx_login(api, good).status_code == 409  # another address goes on


@pytest.mark.parametrize(
    "body",
    [
        {"code": "abc"},
        {"appid": "nope", "code": "abc"},
        {"appid": MP_APPID, "code": ""},
        {"appid": MP_APPID, "code": "abc", "openid": "o-guide"},
        {"appid": "wx0000000000000fff", "code": "abc"},
    ],
)
def test_bad_login_bodies_are_422(api, wechat_apps, body):
    response = api.client.post(LOGIN, json=body)
    assert response.status_code == 422, response.get_json()
    assert wechat_apps.calls["/sns/jscode2session"] == 0


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"phone": GUIDE},
        {"password": DEMO_PASSWORD},
        {"phone": GUIDE, "password": DEMO_PASSWORD, "phone_code": "x"},
    ],
)
def test_bind_needs_exactly_one_proof(api, session, wechat_apps, extra):
    response = bind(api, wechat_apps.login_code(MP_APPID, openid="o-guide"), **extra)
    assert response.status_code == 422, response.get_json()
    assert count(session, StaffWechat) == 0


def test_a_brand_without_a_mini_program_cannot_be_logged_into(api, fake_wechat):
    response = wx_login(api, "abc")
    assert response.status_code == 422 and "appid" in response.get_json()["errors"]


def test_an_appid_belongs_to_one_brand(api, wechat_apps):
    response = api.client.put(
        "/api/v1/wechat/config", json={"mp_appid": MP_APPID}, headers=api.headers(RIVAL_HQ)
    )
    assert response.status_code == 409 and "mp_appid" in response.get_json()["errors"]


# --- leaving, unbinding, who sees what ------------------------------------------------------


def test_leaving_ends_wechat_logins_and_the_binding(api, session, wechat_apps):
    tokens = bound(api, wechat_apps)
    guide_id = staff_by_phone(session, GUIDE).id
    assert api.post(MANAGER, f"/api/v1/staff/{guide_id}/leave").status_code == 200
    assert me(api, tokens).status_code == 401
    assert count(session, StaffWechat) == 0
    again = wx_login(api, wechat_apps.login_code(MP_APPID, openid="o-guide"))
    assert again.status_code == 409
    rebind = bind(
        api, wechat_apps.login_code(MP_APPID, openid="o-guide"), phone=GUIDE, password=DEMO_PASSWORD
    )
    assert rebind.status_code == 401


def test_hq_sees_and_unbinds_and_the_logins_end(api, session, wechat_apps):
    tokens = bound(api, wechat_apps)
    guide_id = staff_by_phone(session, GUIDE).id
    url = f"/api/v1/staff/{guide_id}/wechat"
    shown = api.get(HQ, url).get_json()
    assert shown["bound"] is True and shown["appid"] == MP_APPID and "openid" not in shown
    assert api.get(MANAGER, url).get_json()["bound"] is True  # their store's guide
    assert api.client.delete(url, headers=api.headers(MANAGER)).status_code == 403
    assert api.client.delete(url, headers=api.headers(HQ)).status_code == 204
    assert me(api, tokens).status_code == 401
    assert api.get(HQ, url).get_json()["bound"] is False
    assert wx_login(api, wechat_apps.login_code(MP_APPID, openid="o-guide")).status_code == 409
    assert api.client.delete(url, headers=api.headers(HQ)).status_code == 204  # nothing to do


def test_not_yours_is_not_there(api, session, wechat_apps):
    bound(api, wechat_apps)
    guide_id = staff_by_phone(session, GUIDE).id
    url = f"/api/v1/staff/{guide_id}/wechat"
    missing = "/api/v1/staff/nobody0000000000000000000000000/wechat"
    for phone in (RIVAL_HQ,):
        assert api.get(phone, url).status_code == 404
        assert api.client.delete(url, headers=api.headers(phone)).status_code == 404
        assert api.get(phone, missing).status_code == 404
    other_store_guide_id = staff_by_phone(session, OTHER_GUIDE).id
    assert api.get(MANAGER, f"/api/v1/staff/{other_store_guide_id}/wechat").status_code == 404
    assert count(session, StaffWechat) == 1


# --- mini-program codes ---------------------------------------------------------------------


def wxacode(api, phone, code_id):
    return api.get(phone, f"/api/v1/codes/{code_id}/wxacode.png")


PNG = b"\x89PNG\r\n\x1a\n"


def test_a_code_gets_a_mini_program_code_made_once(api, session, wechat_apps):
    code = make_code(session, author_phone=HQ)
    first = wxacode(api, HQ, code.id)
    assert first.status_code == 200, first.get_json()
    assert first.mimetype == "image/png" and first.data.startswith(PNG)
    path, _args, body = [r for r in wechat_apps.requests if r[0] == "/wxa/getwxacodeunlimit"][0]
    assert b'"scene": "%s"' % code.code.encode() in body and b"pages/scan/index" in body
    again = wxacode(api, HQ, code.id)
    assert again.data == first.data
    assert wechat_apps.calls["/wxa/getwxacodeunlimit"] == 1  # kept, not asked again
    # HQ points codes at another page: a new image, once.
    put = api.client.put(
        "/api/v1/wechat/config",
        json={"mp_code_page": "pages/index/index"},
        headers=api.headers(HQ),
    )
    assert put.status_code == 200 and put.get_json()["mp_code_page"] == "pages/index/index"
    third = wxacode(api, HQ, code.id)
    assert third.status_code == 200 and third.data != first.data
    wxacode(api, HQ, code.id)
    assert wechat_apps.calls["/wxa/getwxacodeunlimit"] == 2
    assert count(session, MiniProgramCode) == 2


def test_mini_program_codes_are_scoped_like_qr_images(api, session, wechat_apps):
    listed = api.get(HQ, "/api/v1/codes?limit=100").get_json()["items"]
    code_id = next(c["id"] for c in listed if c["code"] == "zhang-card")  # SH001's guide
    assert wxacode(api, GUIDE, code_id).status_code == 200  # the guide's own code
    assert wxacode(api, OTHER_GUIDE, code_id).status_code == 404
    assert wxacode(api, RIVAL_HQ, code_id).status_code == 404
    assert wxacode(api, HQ, "nope").status_code == 404
    assert api.client.get(f"/api/v1/codes/{code_id}/wxacode.png").status_code == 401


def test_without_a_mini_program_it_is_409_and_wechat_is_not_asked(api, session, fake_wechat):
    code = make_code(session, author_phone=HQ)
    answer = wxacode(api, HQ, code.id)
    assert answer.status_code == 409 and "wechat_not_configured" in answer.get_json()["message"]
    assert fake_wechat.calls["/wxa/getwxacodeunlimit"] == 0


def test_wechat_refusing_the_page_is_409_and_busy_is_503(api, session, wechat_apps):
    code = make_code(session, author_phone=HQ)
    wechat_apps.pages = {"pages/index/index"}  # the page is not in the released version
    refused = wxacode(api, HQ, code.id)
    assert refused.status_code == 409 and "pages/scan/index" in refused.get_json()["message"]
    wechat_apps.pages = {"pages/scan/index"}
    wechat_apps.fail_next("/wxa/getwxacodeunlimit", 45009)
    busy = wxacode(api, HQ, code.id)
    assert busy.status_code == 503 and busy.headers["Retry-After"]
    assert count(session, MiniProgramCode) == 0
    assert wxacode(api, HQ, code.id).status_code == 200


def test_a_code_too_long_for_a_scene_is_409_without_asking_wechat(api, session, wechat_apps):
    code = make_code(session, author_phone=HQ)
    code.code = "x" * 33
    session.flush()
    answer = wxacode(api, HQ, code.id)
    assert answer.status_code == 409 and "32" in answer.get_json()["message"]
    assert wechat_apps.calls["/wxa/getwxacodeunlimit"] == 0


@pytest.mark.parametrize("page", ["/pages/scan/index", "pages//x", "a" * 129, "pages/<x>"])
def test_a_bad_page_is_422(api, session, wechat_apps, page):
    response = api.client.put(
        "/api/v1/wechat/config", json={"mp_code_page": page}, headers=api.headers(HQ)
    )
    assert response.status_code == 422 and "mp_code_page" in response.get_json()["errors"]
