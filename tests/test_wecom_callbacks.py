"""WeCom's callback URL: verified, decrypted, stored once, answered at once; processed
from the stored table by the job worker, retried with backoff, dead-lettered, replayed."""

import time

import pytest
from sqlalchemy import func, select

from guideapp import create_app
from guideapp.wecom import events as wecom_events
from guideapp.wecom.models import WecomEvent
from tests.conftest import GUIDE, HQ, MANAGER, RIVAL_HQ, ApiClient, make_config
from tests.test_jobs import run_jobs
from tests.wecom_helpers import CALLBACK, configure, post_callback

# WeCom's callback documentation (加解密方案说明, 验证URL有效性) sample.
SAMPLE = {
    "token": "QDG6eK",
    "aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "corp_id": "wx5823bf96d3bd56c7",
    "args": {
        "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        "timestamp": "1409659589",
        "nonce": "263014780",
        "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO"
        "+FZXvnaqQ==",
    },
    "echo": "1616140317555161061",
}


def _stored(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(WecomEvent))


def _adds(corp, external_userid="wmCustomer0001", userid="guide003", **kwargs) -> dict:
    fake = corp.fake
    fake.add_user(corp.corp_id, userid=userid, name="导购")
    fake.add_customer(corp.corp_id, external_userid=external_userid, name="顾客", unionid=None)
    return fake.customer_adds(corp.corp_id, userid, external_userid, state="gd:test", **kwargs)


def test_url_verification_with_the_documented_sample(database, connection):
    # The sample is from 2014: this app's window admits it, nothing else differs.
    app = create_app(make_config(database, WECOM_TIMESTAMP_WINDOW_SECONDS=10**10), bind=connection)
    api = ApiClient(app.test_client())
    configure(
        api,
        HQ,
        corp_id=SAMPLE["corp_id"],
        callback_token=SAMPLE["token"],
        callback_aes_key=SAMPLE["aes_key"],
    )
    answer = api.client.get(CALLBACK, query_string=SAMPLE["args"])
    assert answer.status_code == 200, answer.get_json()
    assert answer.mimetype == "text/plain"
    assert answer.get_data(as_text=True) == SAMPLE["echo"]

    tampered = dict(SAMPLE["args"], msg_signature="0" * 40)
    assert api.client.get(CALLBACK, query_string=tampered).status_code == 401


def test_url_verification_now_and_outside_the_window(api, wecom_corp):
    args = wecom_corp.fake.verify_url_args(
        wecom_corp.corp_id, wecom_corp.token, wecom_corp.aes_key, echo="8842211"
    )
    answer = api.client.get(CALLBACK, query_string=args)
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == "8842211"
    old = wecom_corp.fake.verify_url_args(
        wecom_corp.corp_id,
        wecom_corp.token,
        wecom_corp.aes_key,
        echo="8842211",
        timestamp=str(int(time.time()) - 3600),
    )
    refused = api.client.get(CALLBACK, query_string=old)
    assert refused.status_code == 401
    assert "timestamp" in refused.get_json()["message"]


def test_a_callback_and_three_retries_are_stored_once(api, session, wecom_corp):
    fields = _adds(wecom_corp)
    before = _stored(session)
    for _ in range(4):  # WeCom retries a message it did not see answered in time
        args, body = wecom_corp.callback(fields)  # each retry: a new nonce and signature
        answer = post_callback(api.client, args, body)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.get_data(as_text=True) == "success"
    assert _stored(session) == before + 1
    event = session.scalars(select(WecomEvent).order_by(WecomEvent.received_at.desc())).first()
    assert event.state == "pending"
    assert event.change_type == "add_external_contact"
    assert event.fields["ExternalUserID"] == "wmCustomer0001"


def test_two_customers_adding_one_guide_in_the_same_second_are_two_events(api, session, wecom_corp):
    first = _adds(wecom_corp, external_userid="wmCustomer0001")
    second = _adds(wecom_corp, external_userid="wmCustomer0002")
    second["CreateTime"] = first["CreateTime"]  # the same second
    before = _stored(session)
    for fields in (first, second, first):
        args, body = wecom_corp.callback(fields)
        assert post_callback(api.client, args, body).get_data(as_text=True) == "success"
    assert _stored(session) == before + 2


def _refusals(corp, fields):
    args, body = corp.callback(fields)
    other_corp = corp.fake.callback("ww00000000000000ff", corp.token, corp.aes_key, fields)
    old = corp.callback(fields, timestamp=str(int(time.time()) - 3600))
    return {
        "bad signature": (401, dict(args, msg_signature="f" * 40), body, CALLBACK),
        "no signature": (
            422,
            {k: v for k, v in args.items() if k != "msg_signature"},
            body,
            CALLBACK,
        ),
        "old timestamp": (401, *old, CALLBACK),
        "another corp": (403, *other_corp, CALLBACK),
        "not xml": (400, args, b"\xff\xfe not xml", CALLBACK),
        "no Encrypt": (400, args, b"<xml><ToUserName>x</ToUserName></xml>", CALLBACK),
        "unknown tenant": (404, args, body, "/api/v1/wecom/callback/nobody"),
        "unknown parameter": (422, dict(args, extra="1"), body, CALLBACK),
        "too large": (413, args, b"<xml>" + b"a" * 70_000 + b"</xml>", CALLBACK),
    }


def test_refused_callbacks_write_nothing(api, session, wecom_corp):
    fields = _adds(wecom_corp)
    for why, (status, args, body, path) in _refusals(wecom_corp, fields).items():
        before = _stored(session)
        answer = post_callback(api.client, args, body, path)
        assert answer.status_code == status, (why, answer.get_data(as_text=True))
        assert answer.get_json()["code"], why  # our one error shape
        assert _stored(session) == before, why


def test_a_tampered_ciphertext_is_refused(api, session, wecom_corp):
    args, body = wecom_corp.callback(_adds(wecom_corp))
    text = body.decode() if isinstance(body, bytes) else body
    start = text.index("<Encrypt>") + len("<Encrypt>")
    start += 9 if text[start:].startswith("<![CDATA[") else 0
    flipped = text[:start] + ("B" if text[start] == "A" else "A") + text[start + 1 :]
    before = _stored(session)
    answer = post_callback(api.client, args, flipped.encode())
    assert answer.status_code == 401  # the signature covers the ciphertext
    assert _stored(session) == before


def test_events_are_hq_only_and_never_another_tenants(api, session, wecom_corp):
    args, body = wecom_corp.callback(_adds(wecom_corp))
    assert post_callback(api.client, args, body).status_code == 200
    listed = api.get(HQ, "/api/v1/wecom/events?state=pending").get_json()["items"]
    assert listed and listed[0]["message"]["ExternalUserID"] == "wmCustomer0001"
    event_id = listed[0]["id"]
    assert api.get(HQ, f"/api/v1/wecom/events/{event_id}").status_code == 200
    assert api.get(RIVAL_HQ, "/api/v1/wecom/events").get_json()["items"] == []
    assert api.get(RIVAL_HQ, f"/api/v1/wecom/events/{event_id}").status_code == 404
    assert api.post(RIVAL_HQ, f"/api/v1/wecom/events/{event_id}/replay").status_code == 404
    for phone in (MANAGER, GUIDE):
        assert api.get(phone, "/api/v1/wecom/events").status_code == 403
    assert api.get(HQ, "/api/v1/wecom/events?bogus=1").status_code == 422


def test_config_secrets_are_write_only(api, wecom_corp):
    from tests import wecom_helpers as w

    answer = api.get(HQ, "/api/v1/wecom/config")
    assert answer.status_code == 200
    config = answer.get_json()
    assert config["corp_id"] == w.CORP_ID and config["agent_id"] == w.AGENT_ID
    assert config["contacts_ready"] and config["callback_ready"]
    assert config["callback_url"].endswith("/api/v1/wecom/callback/stride")
    text = answer.get_data(as_text=True)
    for secret in (w.CONTACT_SECRET, w.AGENT_SECRET, w.TOKEN, w.AES_KEY):
        assert secret not in text
    assert all(config[f"{name}_set"] for name in ("contact_secret", "callback_token"))
    assert api.get(MANAGER, "/api/v1/wecom/config").status_code == 403
    assert api.get(RIVAL_HQ, "/api/v1/wecom/config").get_json()["corp_id"] is None
    taken = api.client.put(
        "/api/v1/wecom/config", json={"corp_id": w.CORP_ID}, headers=api.headers(RIVAL_HQ)
    )
    assert taken.status_code == 409
    bad = api.client.put(
        "/api/v1/wecom/config", json={"callback_aes_key": "short"}, headers=api.headers(HQ)
    )
    assert bad.status_code == 422 and "callback_aes_key" in bad.get_json()["errors"]


def test_an_event_nobody_handles_is_kept_as_ignored(api, app, session, wecom_corp):
    fields = {
        "ToUserName": wecom_corp.corp_id,
        "FromUserName": "sys",
        "CreateTime": str(int(time.time())),
        "MsgType": "event",
        "Event": "some_future_event",
    }
    args, body = wecom_corp.callback(fields)
    assert post_callback(api.client, args, body).status_code == 200
    run_jobs(app)
    session.expire_all()
    event = session.scalar(select(WecomEvent).where(WecomEvent.event == "some_future_event"))
    assert event.state == "ignored" and event.processed_at is not None


@pytest.fixture
def flaky_handler():
    """An event kind of this test's own whose processing fails while `failing` is set: the
    retry machinery is what is under test, not any event's effects."""
    state = {"failing": True, "calls": 0}

    def handler(session, event):
        state["calls"] += 1
        if state["failing"]:
            raise RuntimeError("boom")
        return {"ok": True}

    wecom_events.HANDLERS["guideapp_test_flaky", None] = handler
    yield state
    del wecom_events.HANDLERS["guideapp_test_flaky", None]


def test_a_failing_event_is_retried_then_dead_then_replayed(
    database, connection, fake_wecom, flaky_handler
):
    from tests import wecom_helpers as w

    app = create_app(
        make_config(database, WECOM_EVENT_MAX_ATTEMPTS=3, WECOM_EVENT_RETRY_SECONDS=0.05),
        bind=connection,
    )
    api = ApiClient(app.test_client())
    fake_wecom.add_corp(w.CORP_ID, w.CONTACT_SECRET, w.AGENT_ID, w.AGENT_SECRET)
    configure(api, HQ)
    corp = w.Corp(fake_wecom)
    fields = {
        "ToUserName": w.CORP_ID,
        "FromUserName": "sys",
        "CreateTime": str(int(time.time())),
        "MsgType": "event",
        "Event": "guideapp_test_flaky",
    }
    args, body = corp.callback(fields)
    assert post_callback(api.client, args, body).status_code == 200
    run_jobs(app)  # attempts 1..3, each after its backoff, then dead
    dead = api.get(HQ, "/api/v1/wecom/events?state=dead").get_json()["items"]
    assert [e["attempts"] for e in dead] == [3]
    assert "RuntimeError" in dead[0]["error"] and "boom" not in dead[0]["error"]
    assert flaky_handler["calls"] == 3

    flaky_handler["failing"] = False
    replayed = api.post(HQ, f"/api/v1/wecom/events/{dead[0]['id']}/replay")
    assert replayed.status_code == 200 and replayed.get_json()["state"] == "pending"
    again = api.post(HQ, f"/api/v1/wecom/events/{dead[0]['id']}/replay")
    assert again.status_code == 409  # only a dead event replays
    run_jobs(app)
    done = api.get(HQ, f"/api/v1/wecom/events/{dead[0]['id']}").get_json()
    assert done["state"] == "done" and done["result"] == {"ok": True}
    assert flaky_handler["calls"] == 4
