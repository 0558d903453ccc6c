"""WeChat Pay v3: HQ's merchants, and notifications signed and encrypted by the test fake
(tests/wechatpay_fake.py) as WeChat Pay does, through the public notify URL."""

from __future__ import annotations

import copy
import logging
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from guideapp.changelog.models import ChangeLogEntry
from guideapp.commissions.models import CommissionEntry
from guideapp.members.identity import add_identity
from guideapp.members.models import Member, MemberIdentity, Order, OrderRefund
from guideapp.wechatpay.models import PayMerchant
from tests.conftest import GUIDE, HQ, MANAGER, RIVAL_HQ, make_config
from tests.factories import staff_by_phone, store_by_code
from tests.wechatpay_fake import SAMPLE_REFUND, SAMPLE_TRANSACTION, FakeWeChatPay

MCHID = SAMPLE_TRANSACTION["mchid"]
APPID = SAMPLE_TRANSACTION["appid"]
DEVICE = SAMPLE_TRANSACTION["scene_info"]["device_id"]


@pytest.fixture
def pay():
    return FakeWeChatPay()


def merchant_body(session, pay: FakeWeChatPay, **overrides) -> dict:
    body = {
        "name": "Stride 华东商户",
        "mchid": MCHID,
        "appids": [APPID],
        "apiv3_key": pay.apiv3_key,
        "platform_keys": [pay.platform_key()],
        "store_id": store_by_code(session, "SH002").id,
        "terminals": [{"device_id": DEVICE, "store_id": store_by_code(session, "BJ001").id}],
    }
    body = {**body, **overrides}
    if body["apiv3_key"] is None:  # not sent: the stored key is kept
        del body["apiv3_key"]
    return body


@pytest.fixture
def merchant(api, session, pay) -> dict:
    created = api.post(HQ, "/api/v1/wechat/pay/merchants", json=merchant_body(session, pay))
    assert created.status_code == 201, created.get_json()
    return created.get_json()


def notify(client, merchant_id: str, headers: dict, body: bytes):
    return client.post(f"/api/v1/wechat/pay/notify/{merchant_id}", data=body, headers=headers)


def paid(**changes) -> dict:
    """The docs' sample transaction, paid now unless told."""
    resource = copy.deepcopy(SAMPLE_TRANSACTION)
    resource["success_time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for key, value in changes.items():
        if value is None:
            resource.pop(key, None)
        else:
            resource[key] = value
    return resource


def refunded(**changes) -> dict:
    resource = copy.deepcopy(SAMPLE_REFUND)
    resource["success_time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    resource.update(changes)
    return resource


def snapshot(session) -> dict:
    """Row counts of everything a notification may write."""
    session.expire_all()
    return {
        model.__name__: session.scalar(select(func.count()).select_from(model))
        for model in (Member, MemberIdentity, Order, OrderRefund, CommissionEntry, ChangeLogEntry)
    }


OPENID_KIND = f"openid:{APPID}"  # an openid in the paying app's namespace, as scans keep it


def payer_identity(session, openid=SAMPLE_TRANSACTION["payer"]["openid"]):
    return session.scalar(select(MemberIdentity).where(MemberIdentity.value == openid))


# --- payments -------------------------------------------------------------------------------


def test_the_docs_sample_payment_makes_a_member_and_an_order_and_a_retry_changes_nothing(
    client, session, pay, merchant
):
    resource = copy.deepcopy(SAMPLE_TRANSACTION)  # the sample as published, paid in 2018
    headers, body = pay.notification("TRANSACTION.SUCCESS", resource)
    before = snapshot(session)
    answer = notify(client, merchant["id"], headers, body)
    assert answer.status_code == 204, answer.get_json()
    assert answer.data == b""
    after = snapshot(session)
    assert after["Member"] == before["Member"] + 1
    assert after["Order"] == before["Order"] + 1
    identity = payer_identity(session)
    assert identity.kind == OPENID_KIND
    member = session.get(Member, identity.member_id)
    assert member.source_channel == "wechat_pay" and member.stage == "customer"
    order = session.scalar(select(Order).where(Order.order_no == resource["transaction_id"]))
    assert (order.channel, order.amount_fen, order.member_id) == ("wechat_pay", 100, member.id)
    assert order.ordered_at == datetime(2018, 6, 8, 2, 34, 56, tzinfo=timezone.utc)
    # attach "自定义数据" is no store code: the terminal's store books it
    assert order.store_id == store_by_code(session, "BJ001").id

    again = notify(client, merchant["id"], *pay.notification("TRANSACTION.SUCCESS", resource))
    assert again.status_code == 204
    assert snapshot(session) == after


def test_a_bound_member_pays_and_their_guide_earns_then_a_refund_claws_back(
    api, client, session, pay, merchant
):
    created = api.post(GUIDE, "/api/v1/members", json={"phone": "13566660002", "name": "李四"})
    assert created.status_code == 201, created.get_json()
    member = session.get(Member, created.get_json()["id"])
    guide = staff_by_phone(session, GUIDE)
    assert member.guide_id == guide.id
    add_identity(session, member, kind=OPENID_KIND, value="o-bound-payer")
    resource = paid(
        transaction_id="4200000001202612010000000001",
        amount={"total": 69900, "currency": "CNY"},
        payer={"openid": "o-bound-payer"},
        attach="SH001",
    )
    before = snapshot(session)
    assert (
        notify(
            client, merchant["id"], *pay.notification("TRANSACTION.SUCCESS", resource)
        ).status_code
        == 204
    )
    order = session.scalar(select(Order).where(Order.order_no == resource["transaction_id"]))
    assert (order.member_id, order.guide_id) == (member.id, guide.id)
    assert order.store_id == store_by_code(session, "SH001").id  # attach names the store
    earned = session.scalars(
        select(CommissionEntry).where(
            CommissionEntry.source_id == order.id, CommissionEntry.kind == "order"
        )
    ).all()
    assert earned and all(e.guide_id == guide.id and e.amount_fen > 0 for e in earned)
    assert snapshot(session)["Member"] == before["Member"]  # found, not created

    refund = refunded(
        transaction_id=resource["transaction_id"],
        refund_id="50300000012026120100000001",
        amount={"total": 69900, "refund": 34950},
    )
    first = notify(client, merchant["id"], *pay.notification("REFUND.SUCCESS", refund))
    assert first.status_code == 204, first.get_json()
    session.refresh(order)
    assert order.refunded_fen == 34950
    clawed = session.scalars(
        select(CommissionEntry).where(
            CommissionEntry.member_id == member.id, CommissionEntry.kind == "clawback"
        )
    ).all()
    assert clawed and sum(c.amount_fen for c in clawed) < 0
    after_refund = snapshot(session)
    retry = notify(client, merchant["id"], *pay.notification("REFUND.SUCCESS", refund))
    assert retry.status_code == 204
    assert snapshot(session) == after_refund
    me = api.get(GUIDE, "/api/v1/commissions/me").get_json()
    texts = {e["text"] for e in me["entries"]}
    assert "会员 李四 首单 ¥699.00 提成 3% ¥20.97" in texts
    assert "会员 李四 退款 ¥349.50 扣回提成 ¥10.48" in texts

    # another total than the payment's, or more than is left: FAIL, nothing written
    other_total = refunded(
        transaction_id=resource["transaction_id"],
        refund_id="50300000012026120100000002",
        amount={"total": 70000, "refund": 100},
    )
    conflict = notify(client, merchant["id"], *pay.notification("REFUND.SUCCESS", other_total))
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "FAIL"
    too_much = refunded(
        transaction_id=resource["transaction_id"],
        refund_id="50300000012026120100000003",
        amount={"total": 69900, "refund": 40000},
    )
    refused = notify(client, merchant["id"], *pay.notification("REFUND.SUCCESS", too_much))
    assert refused.status_code == 422 and refused.get_json()["code"] == "FAIL"
    assert snapshot(session) == after_refund


def test_a_refund_of_a_payment_not_recorded_yet_is_retried_later(client, session, pay, merchant):
    before = snapshot(session)
    answer = notify(client, merchant["id"], *pay.notification("REFUND.SUCCESS", refunded()))
    assert answer.status_code == 404 and answer.get_json()["code"] == "FAIL"
    assert snapshot(session) == before


def test_the_same_transaction_with_another_amount_is_refused(client, session, pay, merchant):
    assert (
        notify(client, merchant["id"], *pay.notification("TRANSACTION.SUCCESS", paid())).status_code
        == 204
    )
    before = snapshot(session)
    changed = paid(amount={"total": 1, "currency": "CNY"})
    answer = notify(client, merchant["id"], *pay.notification("TRANSACTION.SUCCESS", changed))
    assert answer.status_code == 409
    assert answer.get_json()["code"] == "FAIL" and answer.get_json()["message"]
    assert snapshot(session) == before


def test_store_falls_back_to_the_merchants_default_store(client, session, pay, merchant):
    resource = paid(attach="", scene_info={}, payer={"openid": "o-default-store"})
    assert (
        notify(
            client, merchant["id"], *pay.notification("TRANSACTION.SUCCESS", resource)
        ).status_code
        == 204
    )
    order = session.scalar(select(Order).where(Order.order_no == resource["transaction_id"]))
    assert order.store_id == store_by_code(session, "SH002").id


def test_events_that_record_nothing_are_acknowledged(client, session, pay, merchant):
    before = snapshot(session)
    closed = refunded(refund_status="CLOSED")
    for event, resource in (
        ("REFUND.CLOSED", closed),
        ("REFUND.ABNORMAL", refunded(refund_status="ABNORMAL")),
        ("TRANSACTION.SUCCESS", paid(trade_state="REFUND")),
    ):
        answer = notify(client, merchant["id"], *pay.notification(event, resource))
        assert answer.status_code == 204, (event, answer.get_json())
    assert snapshot(session) == before


# --- refusals: 4xx {"code": "FAIL"}, nothing written --------------------------------------


def _tampered(pay):
    headers, body = pay.notification("TRANSACTION.SUCCESS", paid())
    return headers, body.replace(b'"summary": "', b'"summary": "x')


def _stale(pay):
    return pay.notification("TRANSACTION.SUCCESS", paid(), timestamp=int(time.time()) - 301)


def _ahead(pay):
    return pay.notification("TRANSACTION.SUCCESS", paid(), timestamp=int(time.time()) + 301)


def _unknown_serial(pay):
    other = FakeWeChatPay(serial="PUB_KEY_ID_0000000000000000000000000000")
    return other.notification("TRANSACTION.SUCCESS", paid())


def _other_signer(pay):
    return FakeWeChatPay(key_name="impostor").notification("TRANSACTION.SUCCESS", paid())


def _missing_signature(pay):
    headers, body = pay.notification("TRANSACTION.SUCCESS", paid())
    del headers["Wechatpay-Signature"]
    return headers, body


def _signature_probe(pay):
    """WeChat's signature probes (WECHATPAY/SIGNTEST/...) must be refused."""
    headers, body = pay.notification("TRANSACTION.SUCCESS", paid())
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    return headers, body


def _wrong_apiv3_key(pay):
    other = FakeWeChatPay(apiv3_key="b" * 32)
    return other.notification("TRANSACTION.SUCCESS", paid())


def _another_merchant(pay):
    return pay.notification("TRANSACTION.SUCCESS", paid(mchid="1900000109"))


def _another_app(pay):
    return pay.notification("TRANSACTION.SUCCESS", paid(appid="wx0000000000000000"))


def _not_json(pay):
    return pay.sign(b"{not json"), b"{not json"


def _not_an_object(pay):
    return pay.sign(b"[1, 2]"), b"[1, 2]"


def _plain_resource(pay):
    body = b'{"resource_type": "plain", "event_type": "TRANSACTION.SUCCESS", "resource": {}}'
    return pay.sign(body), body


def _unreadable_transaction(pay):
    return pay.notification("TRANSACTION.SUCCESS", {"transaction_id": "x", "amount": "lots"})


def _not_cny(pay):
    return pay.notification("TRANSACTION.SUCCESS", paid(amount={"total": 100, "currency": "USD"}))


def _huge(pay):
    body = pay.body("TRANSACTION.SUCCESS", paid(attach="A"))
    body = body[:-1] + b', "padding": "' + b"x" * 70_000 + b'"}'
    return pay.sign(body), body


def _non_utf8(pay):
    body = b'{"id": "\xff"}'
    return pay.sign(b"{}"), body


REFUSALS = {
    "tampered body": (_tampered, 401),
    "timestamp too old": (_stale, 401),
    "timestamp ahead": (_ahead, 401),
    "unknown serial": (_unknown_serial, 401),
    "signed by another key": (_other_signer, 401),
    "missing signature": (_missing_signature, 401),
    "signature probe": (_signature_probe, 401),
    "wrong APIv3 key": (_wrong_apiv3_key, 400),
    "another merchant": (_another_merchant, 403),
    "another app": (_another_app, 403),
    "not JSON": (_not_json, 400),
    "not an object": (_not_an_object, 400),
    "no encrypted resource": (_plain_resource, 400),
    "unreadable transaction": (_unreadable_transaction, 400),
    "not CNY": (_not_cny, 422),
    "huge body": (_huge, 413),
    "not UTF-8": (_non_utf8, 400),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_answer_fail_and_write_nothing(client, session, pay, merchant, case):
    make, status = REFUSALS[case]
    headers, body = make(pay)
    before = snapshot(session)
    answer = notify(client, merchant["id"], headers, body)
    assert answer.status_code == status, answer.get_json()
    payload = answer.get_json()
    assert payload["code"] == "FAIL" and payload["message"], payload
    assert snapshot(session) == before


def test_unknown_or_switched_off_merchant_is_404(api, client, session, pay, merchant):
    headers, body = pay.notification("TRANSACTION.SUCCESS", paid())
    assert notify(client, "no-such-merchant", headers, body).status_code == 404
    off = api.client.put(
        f"/api/v1/wechat/pay/merchants/{merchant['id']}",
        json={**merchant_body(session, pay), "active": False},
        headers=api.headers(HQ),
    )
    assert off.status_code == 200, off.get_json()
    before = snapshot(session)
    answer = notify(client, merchant["id"], headers, body)
    assert answer.status_code == 404 and answer.get_json()["code"] == "FAIL"
    assert snapshot(session) == before


def test_a_tenants_merchant_url_cannot_record_for_another_tenant(
    api, client, session, pay, merchant
):
    rival_pay = FakeWeChatPay(apiv3_key="r" * 32)
    rival = api.post(
        RIVAL_HQ,
        "/api/v1/wechat/pay/merchants",
        json={
            "name": "Rival",
            "mchid": "1900000109",
            "apiv3_key": rival_pay.apiv3_key,
            "platform_keys": [rival_pay.platform_key()],  # the same platform key
        },
    )
    assert rival.status_code == 201, rival.get_json()
    rival_paid = paid(
        mchid="1900000109", appid="wx1111111111111111", payer={"openid": "o-rival-payer"}
    )
    before = snapshot(session)
    # the rival's genuine notification sent to our URL: our APIv3 key cannot open it
    headers, body = rival_pay.notification("TRANSACTION.SUCCESS", rival_paid)
    assert notify(client, merchant["id"], headers, body).status_code == 400
    # even sealed with our key, it names the rival's merchant
    ours = pay.notification("TRANSACTION.SUCCESS", rival_paid)
    assert notify(client, merchant["id"], *ours).status_code == 403
    # and ours sent to the rival's URL does not open there either
    assert (
        notify(
            client, rival.get_json()["id"], *pay.notification("TRANSACTION.SUCCESS", paid())
        ).status_code
        == 400
    )
    assert snapshot(session) == before
    # at its own URL it is recorded, in the rival tenant only
    assert notify(client, rival.get_json()["id"], headers, body).status_code == 204
    order = session.scalar(select(Order).where(Order.order_no == rival_paid["transaction_id"]))
    assert order.tenant_id == staff_by_phone(session, RIVAL_HQ).tenant_id
    assert payer_identity(session, "o-rival-payer").tenant_id == order.tenant_id


def test_platform_keys_rotate_and_certificates_work(api, client, session, pay, merchant):
    new_key = FakeWeChatPay(serial="PUB_KEY_ID_0114232134912410000000000001", key_name="next")
    certified = FakeWeChatPay(key_name="certified")
    certificate, serial = certified.certificate_pem()
    certified.serial = serial.lower().rjust(40, "0")  # case and leading zeros do not matter
    both = api.client.put(
        f"/api/v1/wechat/pay/merchants/{merchant['id']}",
        json=merchant_body(
            session,
            pay,
            apiv3_key=None,
            platform_keys=[
                pay.platform_key(),
                new_key.platform_key(),
                {"certificate": certificate},
            ],
        ),
        headers=api.headers(HQ),
    )
    assert both.status_code == 200, both.get_json()
    shown = both.get_json()["platform_keys"]
    assert [k["source"] for k in shown] == ["public_key", "public_key", "certificate"]
    assert shown[2]["serial"] == serial
    for number, signer in enumerate((pay, new_key, certified)):
        resource = paid(transaction_id=f"42000000012026120200000000{number}")
        answer = notify(
            client, merchant["id"], *signer.notification("TRANSACTION.SUCCESS", resource)
        )
        assert answer.status_code == 204, answer.get_json()


def test_a_single_tenant_deployment_configures_its_merchant_from_the_environment(
    database, connection, session, pay
):
    from guideapp import create_app

    env = {
        "tenant": "stride",
        "mchid": MCHID,
        "apiv3_key": pay.apiv3_key,
        "public_key_id": pay.serial,
        "public_key": pay.public_key_pem,
        "public_key_file": "",
        "appids": APPID,
        "store_code": "SH002",
    }
    app = create_app(make_config(database, WECHATPAY_ENV_MERCHANT=env), bind=connection)
    client = app.test_client()
    resource = paid(attach="", scene_info={})
    assert (
        notify(client, "env", *pay.notification("TRANSACTION.SUCCESS", resource)).status_code == 204
    )
    order = session.scalar(select(Order).where(Order.order_no == resource["transaction_id"]))
    assert order.store_id == store_by_code(session, "SH002").id
    wrong_app = paid(appid="wx0000000000000000", transaction_id="4200000001202612030000000001")
    assert (
        notify(client, "env", *pay.notification("TRANSACTION.SUCCESS", wrong_app)).status_code
        == 403
    )


def test_without_an_environment_merchant_the_env_url_is_404(client, pay):
    headers, body = pay.notification("TRANSACTION.SUCCESS", paid())
    answer = notify(client, "env", headers, body)
    assert answer.status_code == 404 and answer.get_json()["code"] == "FAIL"


# --- HQ's merchant API -------------------------------------------------------------------------


def test_only_hq_of_the_tenant_sees_and_changes_merchants(api, session, pay, merchant):
    url = f"/api/v1/wechat/pay/merchants/{merchant['id']}"
    body = merchant_body(session, pay)
    for phone in (MANAGER, GUIDE):
        assert api.post(phone, "/api/v1/wechat/pay/merchants", json=body).status_code == 403
        assert api.get(phone, url).status_code == 404
        assert api.get(phone, "/api/v1/wechat/pay/merchants").get_json()["items"] == []
        assert api.client.put(url, json=body, headers=api.headers(phone)).status_code == 404
    assert api.get(RIVAL_HQ, url).status_code == 404
    assert api.client.put(url, json=body, headers=api.headers(RIVAL_HQ)).status_code == 404
    assert api.get(RIVAL_HQ, "/api/v1/wechat/pay/merchants").get_json()["items"] == []
    listed = api.get(HQ, "/api/v1/wechat/pay/merchants").get_json()["items"]
    assert [m["id"] for m in listed] == [merchant["id"]]
    assert merchant["notify_url"].endswith(f"/api/v1/wechat/pay/notify/{merchant['id']}")
    assert merchant["terminals"] == body["terminals"]


def test_the_apiv3_key_is_write_only_sealed_and_never_logged(api, client, session, pay, caplog):
    caplog.set_level(logging.DEBUG)
    secret = pay.apiv3_key
    created = api.post(HQ, "/api/v1/wechat/pay/merchants", json=merchant_body(session, pay))
    merchant = created.get_json()
    url = f"/api/v1/wechat/pay/merchants/{merchant['id']}"
    kept = api.client.put(
        url, json=merchant_body(session, pay, apiv3_key=None, name="改名"), headers=api.headers(HQ)
    )
    del_key = {
        k: v for k, v in merchant_body(session, pay, name="改名").items() if k != "apiv3_key"
    }
    kept_too = api.client.put(url, json=del_key, headers=api.headers(HQ))
    bad_key = api.post(
        HQ, "/api/v1/wechat/pay/merchants", json=merchant_body(session, pay, apiv3_key=secret[:31])
    )
    notified = notify(client, merchant["id"], *pay.notification("TRANSACTION.SUCCESS", paid()))
    refused = notify(client, merchant["id"], *_wrong_apiv3_key(pay))
    answers = [
        created,
        kept,
        kept_too,
        bad_key,
        refused,
        api.get(HQ, url),
        api.get(HQ, "/api/v1/wechat/pay/merchants"),
    ]
    assert created.status_code == 201 and kept.status_code == 200 == kept_too.status_code
    assert bad_key.status_code == 422 and "apiv3_key" in bad_key.get_json()["errors"]
    assert notified.status_code == 204  # the kept key still opens notifications
    for answer in answers:
        assert secret not in answer.get_data(as_text=True)
        assert secret[:31] not in answer.get_data(as_text=True)
    assert merchant["apiv3_key_set"] is True and "apiv3_key" not in merchant
    row = session.get(PayMerchant, merchant["id"])
    assert secret not in row.apiv3_key_sealed
    messages = {record.getMessage() for record in caplog.records}
    assert {"wechat pay notification", "wechat pay notification refused"} <= messages
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__}"
        assert secret not in text and secret[:31] not in text


def test_a_new_apiv3_key_replaces_the_old_one(api, client, session, pay, merchant):
    url = f"/api/v1/wechat/pay/merchants/{merchant['id']}"
    fresh = FakeWeChatPay(apiv3_key="N" * 32)
    changed = api.client.put(
        url, json=merchant_body(session, pay, apiv3_key=fresh.apiv3_key), headers=api.headers(HQ)
    )
    assert changed.status_code == 200
    old = notify(client, merchant["id"], *pay.notification("TRANSACTION.SUCCESS", paid()))
    assert old.status_code == 400
    new = notify(client, merchant["id"], *fresh.notification("TRANSACTION.SUCCESS", paid()))
    assert new.status_code == 204


@pytest.mark.parametrize(
    "change, field",
    [
        ({"mchid": "12ab"}, "mchid"),
        ({"appids": ["not-an-appid"]}, "appids"),
        ({"platform_keys": [{"serial": "PUB_KEY_ID_1", "public_key": "garbage"}]}, "platform_keys"),
        ({"platform_keys": [{"public_key": "x"}]}, "platform_keys"),
        ({"platform_keys": [{"certificate": "-----BEGIN CERTIFICATE-----\nx\n"}]}, "platform_keys"),
        ({"platform_keys": []}, "platform_keys"),
        ({"terminals": [{"device_id": "T1", "store_id": "nope"}]}, "store_id"),
        ({"store_id": "nope"}, "store_id"),
        ({"apiv3_key": "short"}, "apiv3_key"),
    ],
)
def test_bad_merchant_settings_are_422_naming_the_field(api, session, pay, change, field):
    before = session.scalar(select(func.count()).select_from(PayMerchant))
    answer = api.post(
        HQ, "/api/v1/wechat/pay/merchants", json=merchant_body(session, pay, **change)
    )
    assert answer.status_code == 422, answer.get_json()
    assert field in answer.get_json()["errors"]
    assert session.scalar(select(func.count()).select_from(PayMerchant)) == before


def test_a_rival_store_and_a_duplicate_mchid_are_refused(api, session, pay, merchant):
    rival_store = store_by_code(session, "SH001", "rival")
    answer = api.post(
        HQ,
        "/api/v1/wechat/pay/merchants",
        json=merchant_body(session, pay, mchid="1900000001", store_id=rival_store.id),
    )
    assert answer.status_code == 422 and "store_id" in answer.get_json()["errors"]
    twice = api.post(HQ, "/api/v1/wechat/pay/merchants", json=merchant_body(session, pay))
    assert twice.status_code == 409 and "mchid" in twice.get_json()["errors"]


def test_a_sub_merchants_payment_is_its_own_apps_payer(client, session, pay, merchant):
    """Partner mode (服务商): the brand is the sub-merchant; its payer is sub_openid."""
    resource = paid(
        mchid=None,
        appid=None,
        sp_mchid="1900000100",
        sub_mchid=MCHID,
        sp_appid="wx8888888888888888",
        sub_appid=APPID,
        payer={"sp_openid": "o-provider-ns", "sub_openid": "o-brand-ns"},
    )
    answer = notify(client, merchant["id"], *pay.notification("TRANSACTION.SUCCESS", resource))
    assert answer.status_code == 204, answer.get_json()
    identity = payer_identity(session, "o-brand-ns")
    assert identity.kind == OPENID_KIND and payer_identity(session, "o-provider-ns") is None


def test_without_a_secrets_key_hq_cannot_store_a_merchant(database, connection, session, pay):
    from guideapp import create_app
    from tests.conftest import ApiClient

    app = create_app(make_config(database, WECHAT_SECRETS_KEY=None), bind=connection)
    api = ApiClient(app.test_client())
    before = session.scalar(select(func.count()).select_from(PayMerchant))
    answer = api.post(HQ, "/api/v1/wechat/pay/merchants", json=merchant_body(session, pay))
    assert (
        answer.status_code == 503 and "GUIDEAPP_WECHAT_SECRETS_KEY" in answer.get_json()["message"]
    )
    assert session.scalar(select(func.count()).select_from(PayMerchant)) == before
