"""Coupons for members themselves: the wallet a member-facing page shows to the member WeChat
signed in (never anyone else's, never on a client's word), and the coupon a scanned code
gives an identified member, once."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from guideapp.auth.tokens import issue_member_token
from guideapp.coupons.models import Coupon
from guideapp.db import utcnow
from guideapp.members.identity import add_identity, create_member
from guideapp.members.models import Member, MemberIdentity
from tests.conftest import GUIDE, HQ, MANAGER, MP_APPID, RIVAL_HQ
from tests.factories import staff_by_phone, store_by_code
from tests.scan_factories import make_code

SESSION, WALLET = "/api/v1/wechat/me/session", "/api/v1/wechat/me/coupons"
SECRET = "test-secret-key-of-at-least-32-bytes!"  # tests/conftest.py make_config
_phones = itertools.count(1)


def template(api, who=HQ, status=201, **fields) -> dict:
    body = {"name": "到店礼", "kind": "amount_off", "amount_off_fen": 1000, "valid_days": 7}
    response = api.post(who, "/api/v1/coupon-templates", json={**body, **fields})
    assert response.status_code == status, response.get_json()
    return response.get_json()


def member_with_openid(session, openid: str) -> Member:
    tenant_id = staff_by_phone(session, HQ).tenant_id
    member = create_member(
        session, tenant_id=tenant_id, phone=f"134{next(_phones):08d}", source_channel="pos"
    )
    add_identity(session, member, kind=f"openid:{MP_APPID}", value=openid)
    return member


def give(api, member, template_id) -> dict:
    response = api.post(
        HQ, f"/api/v1/members/{member.id}/coupons", json={"template_id": template_id}
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def sign_in(api, fake, openid: str):
    code = fake.login_code(MP_APPID, openid=openid)
    return api.client.post(SESSION, json={"appid": MP_APPID, "code": code})


def wallet(api, token, query=""):
    return api.client.get(WALLET + query, headers={"X-Member-Token": token})


def test_a_member_sees_their_own_coupons_and_nobody_elses(api, session, wechat_apps):
    mine, theirs = member_with_openid(session, "o-mine"), member_with_openid(session, "o-theirs")
    made = template(api, per_member_limit=5)
    available, used, lapsed = (give(api, mine, made["id"]) for _ in range(3))
    other = give(api, theirs, made["id"])
    till = {"channel": "pos", "order_no": "POS-W1", "amount_fen": 5000, "store_code": "SH001"}
    assert (
        api.post(HQ, "/api/v1/coupons/redeem", json={**till, "codes": [used["code"]]}).status_code
        == 200
    )
    session.execute(
        update(Coupon)
        .where(Coupon.id == lapsed["id"])
        .values(valid_from=utcnow() - timedelta(days=8), valid_to=utcnow() - timedelta(days=1))
    )
    signed = sign_in(api, wechat_apps, "o-mine")
    assert signed.status_code == 200, signed.get_json()
    assert signed.get_json()["member_id"] == mine.id
    answer = wallet(api, signed.get_json()["member_token"])
    assert answer.status_code == 200, answer.get_json()
    items = {c["id"]: c for c in answer.get_json()["items"]}
    assert set(items) == {available["id"], used["id"], lapsed["id"]}
    assert items[used["id"]]["status"] == "used" and items[used["id"]]["used_at"]
    assert (items[lapsed["id"]]["status"], items[lapsed["id"]]["state_reason"]) == (
        "expired",
        "expired",
    )
    assert items[available["id"]]["code"] == available["code"]
    assert items[available["id"]]["name"] == "到店礼"
    assert not {"member_id", "issued_by", "task_id", "campaign_id"} & set(items[used["id"]])
    expired = wallet(api, signed.get_json()["member_token"], "?status=expired").get_json()
    assert [c["id"] for c in expired["items"]] == [lapsed["id"]]
    other_wallet = wallet(api, sign_in(api, wechat_apps, "o-theirs").get_json()["member_token"])
    assert [c["id"] for c in other_wallet.get_json()["items"]] == [other["id"]]


def test_forged_or_missing_identities_are_refused(api, session, wechat_apps):
    mine, theirs = member_with_openid(session, "o-mine"), member_with_openid(session, "o-theirs")
    made = template(api)
    give(api, theirs, made["id"])
    token = sign_in(api, wechat_apps, "o-mine").get_json()["member_token"]
    staff_token = api.headers(GUIDE)["Authorization"].split()[1]
    tenant_id = mine.tenant_id
    forged = [
        None,
        "not-a-token",
        staff_token,
        issue_member_token(  # signed with a key that is not the server's
            secret="x" * 40, member_id=theirs.id, tenant_id=tenant_id, now=utcnow(), ttl_seconds=60
        ),
        issue_member_token(  # ours, but over
            secret=SECRET,
            member_id=mine.id,
            tenant_id=tenant_id,
            now=utcnow() - timedelta(hours=3),
            ttl_seconds=60,
        ),
    ]
    for bad in forged:
        headers = {"X-Member-Token": bad} if bad else {}
        assert api.client.get(WALLET, headers=headers).status_code == 401, bad
    # A client cannot name the member or the openid, in the query or the sign-in body.
    for query in (f"?member_id={theirs.id}", "?openid=o-theirs"):
        assert wallet(api, token, query).status_code == 422
    asserted = api.client.post(SESSION, json={"appid": MP_APPID, "openid": "o-theirs"})
    assert asserted.status_code == 422, asserted.get_json()
    assert asserted.get_json()["errors"]["openid"] == ["Unknown field."]
    # A member token opens no staff door; a staff token no member one.
    as_staff = {"Authorization": f"Bearer {token}"}
    assert api.client.get(f"/api/v1/members/{mine.id}/coupons", headers=as_staff).status_code == 401
    assert api.client.get(WALLET, headers=api.headers(GUIDE)).status_code == 401
    before = session.scalar(select(func.count()).select_from(MemberIdentity))
    stranger = sign_in(api, wechat_apps, "o-stranger")
    assert stranger.status_code == 404 and stranger.get_json()["errors"] == {
        "code": ["not_a_member"]
    }
    refused = api.client.post(SESSION, json={"appid": MP_APPID, "code": "never-issued"})
    assert refused.status_code == 422 and "code" in refused.get_json()["errors"]
    assert session.scalar(select(func.count()).select_from(MemberIdentity)) == before


# --- a coupon from a scan ------------------------------------------------------------------


def scan(api, code, address="10.9.0.1", **body):
    response = api.client.post(
        "/api/v1/scans", json={"code": code.code, **body}, environ_base={"REMOTE_ADDR": address}
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def poster(api, session):
    sh001 = store_by_code(session, "SH001")
    return make_code(session, author_phone=HQ, kind="store", store=sh001)


def test_a_code_carries_only_a_coupon_its_author_may_send_there(api, session, poster):
    url = f"/api/v1/codes/{poster.id}"
    store_only = template(api, MANAGER)  # SH001's own template
    bj_code = make_code(
        session, author_phone=HQ, kind="store", store=store_by_code(session, "BJ001")
    )
    paused = template(api, active=False)
    rival = template(api, RIVAL_HQ)
    for template_id in (paused["id"], rival["id"], "unknown"):
        refused = api.patch(HQ, url, json={"coupon_template_id": template_id})
        assert refused.status_code == 422 and "coupon_template_id" in refused.get_json()["errors"]
    elsewhere = api.patch(
        HQ, f"/api/v1/codes/{bj_code.id}", json={"coupon_template_id": store_only["id"]}
    )
    assert elsewhere.status_code == 422
    here = api.patch(HQ, url, json={"coupon_template_id": store_only["id"]})
    assert here.status_code == 200 and here.get_json()["coupon_template_id"] == store_only["id"]
    cleared = api.patch(HQ, url, json={"coupon_template_id": None})
    assert cleared.get_json()["coupon_template_id"] is None


def test_an_identified_scan_gets_one_coupon_and_an_anonymous_one_none(
    api, session, poster, wechat_apps
):
    made = template(api, stock_total=2)
    api.patch(HQ, f"/api/v1/codes/{poster.id}", json={"coupon_template_id": made["id"]})
    assert scan(api, poster)["coupon"] is None  # anonymous
    assert session.scalar(select(func.count()).where(Coupon.template_id == made["id"])) == 0
    first = scan(api, poster, login_code=wechat_apps.login_code(MP_APPID, openid="o-scan-1"))
    assert first["coupon"]["new"] is True and first["coupon"]["name"] == "到店礼"
    again = scan(api, poster, login_code=wechat_apps.login_code(MP_APPID, openid="o-scan-1"))
    assert again["coupon"]["id"] == first["coupon"]["id"] and again["coupon"]["new"] is False
    coupon = session.get_one(Coupon, first["coupon"]["id"])
    assert (coupon.source, coupon.source_id) == ("scan", poster.id)
    assert coupon.issue_key == f"scan:{poster.id}:{coupon.member_id}"
    assert coupon.store_id == store_by_code(session, "SH001").id
    assert session.scalar(select(func.count()).where(Coupon.template_id == made["id"])) == 1
    token = sign_in(api, wechat_apps, "o-scan-1").get_json()["member_token"]
    assert [c["id"] for c in wallet(api, token).get_json()["items"]] == [coupon.id]
    # The stock runs out: the scan still answers, without a coupon.
    scan(api, poster, login_code=wechat_apps.login_code(MP_APPID, openid="o-scan-2"))
    last = scan(api, poster, login_code=wechat_apps.login_code(MP_APPID, openid="o-scan-3"))
    assert last["coupon"] is None and last["store"]["id"] == store_by_code(session, "SH001").id
    assert session.scalar(select(func.count()).where(Coupon.template_id == made["id"])) == 2
