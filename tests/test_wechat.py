"""WeChat: HQ's per-tenant configuration, the wechatpy clients against the fake WeChat
(tests/fake_wechat.py), identities WeChat vouches for on the public scan, JS-SDK signing."""

from __future__ import annotations

import hashlib
import logging

import pytest
from sqlalchemy import func, select

from guideapp import create_app
from guideapp.members.models import Binding, Member, MemberIdentity, MemberTag
from guideapp.scans.models import Scan
from guideapp.wechat.models import WechatConfig
from tests.conftest import (
    HQ,
    MANAGER,
    MP_APPID,
    MP_SECRET,
    OA_APPID,
    RIVAL_HQ,
    make_config,
)
from tests.factories import member_of, staff_by_phone
from tests.scan_factories import make_code

LBS, GUIDE_CODE = "stride-lbs", "zhang-card"
CONFIG = "/api/v1/wechat/config"
JSSDK = "/api/v1/public/wechat/jssdk-config"


@pytest.fixture
def app(database, connection):
    return create_app(
        make_config(database, SCAN_RATE_PER_ADDRESS=100_000, SCAN_RATE_PER_CODE=100_000),
        bind=connection,
    )


def scan(api, code=LBS, **body):
    return api.client.post("/api/v1/scans", json={"code": code, **body})


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def footprint(session):
    return tuple(count(session, m) for m in (Scan, Member, MemberIdentity, Binding, MemberTag))


# --- configuration ----------------------------------------------------------------------


def test_hq_sets_the_apps_and_secrets_are_never_returned_nor_stored_plain(api, session):
    empty = api.get(HQ, CONFIG).get_json()
    assert empty["mp_appid"] is None and empty["mp_secret_set"] is False
    assert empty["mini_program_ready"] is False and empty["secrets_key_set"] is True
    answer = api.client.put(
        CONFIG,
        json={"mp_appid": MP_APPID, "mp_secret": MP_SECRET},
        headers=api.headers(HQ),
    )
    assert answer.status_code == 200, answer.get_json()
    for body in (answer.get_data(as_text=True), api.get(HQ, CONFIG).get_data(as_text=True)):
        assert MP_SECRET not in body and '"mp_secret"' not in body
    shown = api.get(HQ, CONFIG).get_json()
    assert (shown["mp_appid"], shown["mp_secret_set"], shown["mini_program_ready"]) == (
        MP_APPID,
        True,
        True,
    )
    # WeChat Pay merchants are configured apart (/wechat/pay/merchants): not here.
    assert not any(name.startswith("pay") for name in shown)
    row = session.scalar(select(WechatConfig))
    assert row.mp_secret and MP_SECRET not in row.mp_secret  # a Fernet token
    # A PUT without the secret keeps it; null clears a field.
    api.client.put(CONFIG, json={"mp_appid": MP_APPID}, headers=api.headers(HQ))
    assert api.get(HQ, CONFIG).get_json()["mp_secret_set"] is True
    api.client.put(CONFIG, json={"mp_secret": None}, headers=api.headers(HQ))
    assert api.get(HQ, CONFIG).get_json()["mp_secret_set"] is False


def test_only_hq_and_only_their_own_brand(api):
    api.client.put(
        CONFIG, json={"mp_appid": MP_APPID, "mp_secret": MP_SECRET}, headers=api.headers(HQ)
    )
    assert api.get(MANAGER, CONFIG).status_code == 403
    assert api.client.put(CONFIG, json={}, headers=api.headers(MANAGER)).status_code == 403
    assert api.client.get(CONFIG).status_code == 401
    rival = api.get(RIVAL_HQ, CONFIG).get_json()
    assert rival["mp_appid"] is None and rival["mp_secret_set"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"mp_appid": "not-an-appid"},
        {"mp_secret": "short"},
        {"pay_mchid": "1900000109"},  # merchants are /wechat/pay/merchants' business
        {"mp_secret_set": True},
    ],
)
def test_bad_configuration_is_422_and_writes_nothing(api, session, body):
    response = api.client.put(CONFIG, json=body, headers=api.headers(HQ))
    assert response.status_code == 422, response.get_json()
    assert count(session, WechatConfig) == 0


def test_without_a_secrets_key_no_secret_is_stored(database, connection, session):
    app = create_app(make_config(database, WECHAT_SECRETS_KEY=None), bind=connection)
    from tests.conftest import ApiClient

    api = ApiClient(app.test_client())
    response = api.client.put(
        CONFIG, json={"mp_appid": MP_APPID, "mp_secret": MP_SECRET}, headers=api.headers(HQ)
    )
    assert response.status_code == 503
    assert "GUIDEAPP_WECHAT_SECRETS_KEY" in response.get_json()["message"]
    assert count(session, WechatConfig) == 0
    assert api.get(HQ, CONFIG).get_json()["secrets_key_set"] is False


def test_a_malformed_secrets_key_stops_the_app(database, connection):
    with pytest.raises(RuntimeError, match="GUIDEAPP_WECHAT_SECRETS_KEY"):
        create_app(make_config(database, WECHAT_SECRETS_KEY="not-a-fernet-key"), bind=connection)


def test_a_single_tenant_deployment_configures_from_the_environment(
    database, connection, session, fake_wechat
):
    env = {"tenant": "stride", "mp_appid": MP_APPID, "mp_secret": MP_SECRET}
    app = create_app(make_config(database, WECHAT_ENV=env), bind=connection)
    from tests.conftest import ApiClient

    api = ApiClient(app.test_client())
    shown = api.get(HQ, CONFIG).get_json()
    assert shown["mini_program_ready"] and shown["from_environment"] == ["mp_appid", "mp_secret"]
    assert api.get(RIVAL_HQ, CONFIG).get_json()["mini_program_ready"] is False
    fake_wechat.add_app(MP_APPID, MP_SECRET)
    code = fake_wechat.login_code(MP_APPID, openid="o-env")
    assert scan(api, login_code=code).status_code == 200
    assert count(session, MemberIdentity, MemberIdentity.value == "o-env") == 1


# --- identities on the public scan --------------------------------------------------------


def test_an_anonymous_scan_routes_and_is_recorded_but_identifies_nobody(api, session):
    before = footprint(session)
    answer = scan(api, GUIDE_CODE, lead_phone="13612345678")
    assert answer.status_code == 200
    assert answer.get_json()["guide"]["name"] == "张导购"
    row = session.get(Scan, answer.get_json()["scan_id"])
    assert (row.member_id, row.bound, row.member_created) == (None, False, False)
    assert row.lead_phone == "13612345678"  # an unverified lead, nothing more
    after = footprint(session)
    assert after[0] == before[0] + 1 and after[1:] == before[1:]


def test_a_mini_program_login_code_identifies_and_recruits(api, session, wechat_apps):
    code = wechat_apps.login_code(MP_APPID, openid="o-mp-1", unionid="u-1")
    answer = scan(api, GUIDE_CODE, login_code=code)
    assert answer.status_code == 200, answer.get_json()
    member = session.scalar(select(Member).where(Member.unionid == "u-1"))
    assert member is not None and member.guide_id == staff_by_phone(session, "13800000003").id
    identity = session.scalar(select(MemberIdentity).where(MemberIdentity.member_id == member.id))
    assert (identity.kind, identity.value) == (f"openid:{MP_APPID}", "o-mp-1")
    # The same person again, with a new code: the same member.
    again = scan(api, login_code=wechat_apps.login_code(MP_APPID, openid="o-mp-1"))
    assert session.get(Scan, again.get_json()["scan_id"]).member_id == member.id


def test_an_h5_oauth_code_identifies_by_the_official_account_openid(api, session, wechat_apps):
    code = wechat_apps.oauth_code(OA_APPID, openid="o-oa-1")
    answer = scan(api, oauth_code=code)
    assert answer.status_code == 200, answer.get_json()
    member_id = session.get(Scan, answer.get_json()["scan_id"]).member_id
    kinds = session.scalars(
        select(MemberIdentity.kind).where(MemberIdentity.member_id == member_id)
    ).all()
    assert kinds == [f"openid:{OA_APPID}"]
    # WeChat's "snapshot" user (a page seen in a Moments preview) is nobody.
    snap = scan(api, oauth_code=wechat_apps.oauth_code(OA_APPID, openid="o-v", snapshot=True))
    assert session.get(Scan, snap.get_json()["scan_id"]).member_id is None


@pytest.mark.parametrize("how", ["reused", "invalid", "other_app"])
def test_a_reused_or_invalid_code_is_422_and_writes_nothing(api, session, wechat_apps, how):
    code = wechat_apps.login_code(MP_APPID, openid="o-mp-2")
    if how == "reused":
        assert scan(api, login_code=code).status_code == 200
    elif how == "invalid":
        code = "0" * 32
    else:
        code = wechat_apps.oauth_code(OA_APPID, openid="o-mp-2")  # an H5 code, not wx.login's
    before = footprint(session)
    response = scan(api, login_code=code)
    assert response.status_code == 422, response.get_json()
    errcode = 40163 if how == "reused" else 40029
    assert response.get_json()["errors"] == {
        "login_code": [
            f"WeChat errcode {errcode}: code {'already used' if how == 'reused' else 'invalid'}."
        ]
    }
    assert footprint(session) == before


@pytest.mark.parametrize("errcode", [-1, 45009])
def test_wechat_busy_is_503_try_again_and_writes_nothing(api, session, wechat_apps, errcode):
    code = wechat_apps.login_code(MP_APPID, openid="o-busy")
    wechat_apps.fail_next("/sns/jscode2session", errcode)
    before = footprint(session)
    response = scan(api, login_code=code)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert footprint(session) == before
    assert scan(api, login_code=code).status_code == 200  # WeChat never took the code


def test_unreachable_wechat_is_503_and_no_secret_reaches_the_logs(
    database, connection, session, caplog
):
    app = create_app(make_config(database, WECHAT_API_BASE="http://127.0.0.1:9"), bind=connection)
    from tests.conftest import ApiClient

    api = ApiClient(app.test_client())
    api.client.put(
        CONFIG, json={"mp_appid": MP_APPID, "mp_secret": MP_SECRET}, headers=api.headers(HQ)
    )
    before = footprint(session)
    with caplog.at_level(logging.DEBUG):
        response = scan(api, login_code="abc")
    assert response.status_code == 503
    assert MP_SECRET not in caplog.text and MP_SECRET not in response.get_data(as_text=True)
    assert footprint(session) == before


def test_a_code_for_a_brand_without_wechat_is_422(api, session):
    response = scan(api, login_code="abc")
    assert response.status_code == 422
    assert "wechat_not_configured" in response.get_json()["errors"]["login_code"][0]


def test_access_tokens_are_cached_and_refreshed_once_when_wechat_drops_them(
    api, session, wechat_apps
):
    token_calls = lambda: wechat_apps.calls["/cgi-bin/token"]  # noqa: E731
    for i in range(3):
        code = wechat_apps.phone_code(MP_APPID, phone=f"1361234000{i}")
        assert scan(api, phone_code=code).status_code == 200
    assert token_calls() == 1  # one token for three calls (the shared cache)
    for drop in (wechat_apps.expire_tokens, wechat_apps.invalidate_tokens):  # 42001, 40001
        drop()
        before = token_calls()
        code = wechat_apps.phone_code(MP_APPID, phone="13612340009")
        answer = scan(api, phone_code=code)
        assert answer.status_code == 200, answer.get_json()
        assert token_calls() == before + 1  # refreshed once, retried once
    # A WeChat that keeps saying "invalid token" gets one retry, then a clear 503.
    wechat_apps.fail_next("/wxa/business/getuserphonenumber", 40001, times=5)
    before = token_calls()
    answer = scan(api, phone_code=wechat_apps.phone_code(MP_APPID, phone="13612340008"))
    assert answer.status_code == 503
    assert token_calls() == before + 1
    assert wechat_apps.failures["/wxa/business/getuserphonenumber"] == [40001] * 3


def test_a_verified_phone_finds_the_member_and_a_typed_one_moves_nobody(api, session, wechat_apps):
    """The attack of issue 16: a BJ001 member moved to an SH001 guide by typing her phone
    into a scan of zhang-card. A typed phone is a lead; only WeChat's phone code is her."""
    member = member_of(session, "13800000004")  # bound to a BJ001 guide
    bj_guide = member.guide_id
    before = footprint(session)
    assert scan(api, GUIDE_CODE, phone=member.phone).status_code == 422
    assert scan(api, GUIDE_CODE, lead_phone=member.phone).status_code == 200
    session.expire_all()
    assert member.guide_id == bj_guide
    after = footprint(session)
    assert after[1:] == before[1:]
    # She herself, verified by WeChat, does what identified scans do (lock rules apply).
    code = wechat_apps.phone_code(MP_APPID, phone=member.phone)
    answer = scan(api, GUIDE_CODE, phone_code=code).get_json()
    assert session.get(Scan, answer["scan_id"]).member_id == member.id


def test_a_foreign_phone_number_is_refused(api, session, wechat_apps):
    code = wechat_apps.phone_code(MP_APPID, phone="5551234567", country="1")
    response = scan(api, phone_code=code)
    assert response.status_code == 422 and "phone_code" in response.get_json()["errors"]


def test_the_rival_brand_cannot_use_our_apps(api, session, wechat_apps):
    """A rival's code resolves to the rival tenant, which configured no WeChat: our
    mini-program's code is not exchanged for them."""
    rival = make_code(session, author_phone=RIVAL_HQ)
    code = wechat_apps.login_code(MP_APPID, openid="o-x")
    assert scan(api, rival.code, login_code=code).status_code == 422
    assert wechat_apps.calls["/sns/jscode2session"] == 0


# --- JS-SDK --------------------------------------------------------------------------------

# The landing pages' address: GUIDEAPP_PUBLIC_BASE_URL is unset in tests, so the address the
# API was called on (the test client's host).
PAGES = "http://localhost/s/"


def test_jssdk_signature_for_our_landing_page(api, app, wechat_apps):
    url = f"{PAGES}{LBS}?from=poster"
    first = api.client.post(JSSDK, json={"code": LBS, "url": url + "#top"})
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert body["appId"] == OA_APPID
    ticket = wechat_apps.tickets[-1]
    plain = (
        f"jsapi_ticket={ticket}&noncestr={body['nonceStr']}&timestamp={body['timestamp']}&url={url}"
    )
    assert body["signature"] == hashlib.sha1(plain.encode()).hexdigest()
    api.client.post(JSSDK, json={"code": LBS, "url": url})
    assert wechat_apps.calls["/cgi-bin/ticket/getticket"] == 1  # the ticket is cached


@pytest.mark.parametrize(
    "url",
    ["https://evil.example/s/stride-lbs", "javascript:alert(1)", "http://127.0.0.1:8000/api/v1/x"],
)
def test_jssdk_signs_only_our_pages(api, wechat_apps, url):
    response = api.client.post(JSSDK, json={"code": LBS, "url": url})
    assert response.status_code == 422 and "url" in response.get_json()["errors"]
    assert wechat_apps.calls["/cgi-bin/ticket/getticket"] == 0


def test_jssdk_without_an_official_account_is_404_not_configured(api, app):
    url = f"{PAGES}{LBS}"
    response = api.client.post(JSSDK, json={"code": LBS, "url": url})
    assert response.status_code == 404
    assert "wechat_not_configured" in response.get_json()["message"]
    assert api.client.post(JSSDK, json={"code": "nope", "url": url}).status_code == 404


# --- the landing page inside WeChat: snsapi_base OAuth first --------------------------------

WECHAT_BROWSER = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI"
)


def test_landing_page_inside_wechat_goes_through_oauth_once(api, app, wechat_apps):
    from urllib.parse import parse_qs, urlsplit

    opened = api.client.get(f"/s/{LBS}?from=poster", headers={"User-Agent": WECHAT_BROWSER})
    assert opened.status_code == 302
    target = urlsplit(opened.headers["Location"])
    assert target.geturl().startswith(app.config["WECHAT_OAUTH_BASE"])
    query = parse_qs(target.query)
    assert query["appid"] == [OA_APPID] and query["scope"] == ["snsapi_base"]
    assert query["redirect_uri"] == [f"{PAGES}{LBS}?from=poster"]
    # WeChat comes back with the code: the page is served (it posts the code), no loop.
    back = api.client.get(
        f"/s/{LBS}?from=poster&code=abc&state=scan", headers={"User-Agent": WECHAT_BROWSER}
    )
    assert back.status_code == 200 and b"<html" in back.data.lower()
    # Another browser, or a brand without an official account: the page at once.
    assert api.client.get(f"/s/{LBS}").status_code == 200


def test_landing_page_inside_wechat_without_an_official_account_is_served(api):
    opened = api.client.get(f"/s/{LBS}", headers={"User-Agent": WECHAT_BROWSER})
    assert opened.status_code == 200
