"""The fake WeCom (tests/fake_wecom.py) against WeCom's documentation and against wechatpy: the
crypto page's own samples, wechatpy's WeChatCrypto both ways, wechatpy's WeChatClient calling
the fake and getting the documented shapes and error codes. No database, no internet."""

from __future__ import annotations

import base64
import threading

import pytest
import requests
import xmltodict
from wechatpy.exceptions import InvalidSignatureException, WeChatClientException
from wechatpy.work import WeChatClient
from wechatpy.work.crypto import WeChatCrypto
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.fake_wecom import decrypt, encrypt, shared, signature

# The sample of 加解密方案说明 (document/path/90968) and of WeCom's WXBizMsgCrypt library.
DOC_TOKEN = "QDG6eK"
DOC_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
DOC_CORP = "wx5823bf96d3bd56c7"
DOC_VERIFY = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO"
    "+FZXvnaqQ==",
}
DOC_POST_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3Qczc"
    "dCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLj"
    "vd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMn"
    "vw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k"
    "22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2Yoy"
    "yH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)

CORP, CONTACT_SECRET, AGENT_ID, AGENT_SECRET = (
    "ww00000000000000c1",
    "contact-secret",
    1000002,
    "agent",
)
TOKEN, AES_KEY = "cbtoken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
BASE = "/cgi-bin/externalcontact"


class FakeClient(WeChatClient):
    """wechatpy's WeCom client against the fake: API_BASE_URL is the fake's, and gettoken too
    (wechatpy 2.0.0a26 hard-codes https://qyapi.weixin.qq.com/cgi-bin/gettoken in
    fetch_access_token, ignoring API_BASE_URL)."""

    def __init__(self, base: str, corp_id: str, secret: str):
        super().__init__(corp_id, secret, timeout=5)
        self.API_BASE_URL = f"{base}/cgi-bin/"

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=f"{self.API_BASE_URL}gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )


@pytest.fixture
def fake():
    fake = shared()
    fake.reset()
    fake.add_corp(CORP, CONTACT_SECRET, AGENT_ID, AGENT_SECRET)
    fake.add_user(CORP, "zhangsan", "张三")
    fake.add_user(CORP, "lisi", "李四")
    fake.add_customer(CORP, "wmCUSTOMER1", "王五", unionid="oUnion1", avatar="http://a/1", gender=2)
    return fake


@pytest.fixture
def client(fake):
    return FakeClient(fake.url, CORP, CONTACT_SECRET)


def raw(fake, method: str, path: str, token: str | None = None, **kwargs) -> dict:
    params = kwargs.pop("params", {})
    if token is not None:
        params["access_token"] = token
    return requests.request(method, f"{fake.url}{path}", params=params, timeout=5, **kwargs).json()


def token_of(fake, secret: str = CONTACT_SECRET) -> str:
    answer = raw(fake, "GET", "/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": secret})
    assert answer["errcode"] == 0, answer
    return answer["access_token"]


# --- the crypto -------------------------------------------------------------------------


def test_the_documented_url_check_decrypts_to_the_documented_echo():
    args = DOC_VERIFY
    assert (
        signature(DOC_TOKEN, args["timestamp"], args["nonce"], args["echostr"])
        == (args["msg_signature"])
    )
    assert decrypt(DOC_KEY, args["echostr"], DOC_CORP) == "1616140317555161061"


def test_the_documented_post_decrypts_to_the_documented_message():
    assert (
        signature(DOC_TOKEN, "1409659813", "1372623149", DOC_POST_ENCRYPT)
        == "477715d11cdb4164915debcba66cb864d751f3e6"
    )
    msg = xmltodict.parse(decrypt(DOC_KEY, DOC_POST_ENCRYPT, DOC_CORP))["xml"]
    assert msg["ToUserName"] == DOC_CORP and msg["Content"] == "hello" and msg["AgentID"] == "218"
    with pytest.raises(ValueError):
        decrypt(DOC_KEY, DOC_POST_ENCRYPT, "ww-another-corp")


def test_encrypt_pads_to_32_bytes_and_round_trips():
    for msg in ["", "a", "中文" * 20, "x" * 12]:  # 16 + 4 + 12 + 18 = 50: pads to 64
        sealed = encrypt(DOC_KEY, msg, DOC_CORP, random16=b"0123456789abcdef")
        assert len(base64.b64decode(sealed)) % 32 == 0
        assert decrypt(DOC_KEY, sealed, DOC_CORP) == msg


def test_the_fake_and_wechatpy_agree_both_ways(fake):
    crypto = WeChatCrypto(TOKEN, AES_KEY, CORP)
    fields = fake.customer_adds(CORP, "zhangsan", "wmCUSTOMER1", state="gd:abc")
    args, body = fake.callback(CORP, TOKEN, AES_KEY, fields, agent_id=AGENT_ID)
    plain = crypto.decrypt_message(body, args["msg_signature"], args["timestamp"], args["nonce"])
    assert xmltodict.parse(plain)["xml"]["WelcomeCode"] == fields["WelcomeCode"]
    with pytest.raises(InvalidSignatureException):
        WeChatCrypto("another", AES_KEY, CORP).decrypt_message(
            body, args["msg_signature"], args["timestamp"], args["nonce"]
        )

    verify = fake.verify_url_args(CORP, TOKEN, AES_KEY, echo="42")
    echo = crypto.check_signature(
        verify["msg_signature"], verify["timestamp"], verify["nonce"], verify["echostr"]
    )
    assert echo == "42"

    reply = crypto.encrypt_message("<xml><Content>hi</Content></xml>", "123", "1409659813")
    assert fake.reply_accepted(CORP, TOKEN, AES_KEY, 200, reply)
    encrypted = xmltodict.parse(reply)["xml"]["Encrypt"]
    assert decrypt(AES_KEY, encrypted, CORP) == "<xml><Content>hi</Content></xml>"
    assert not fake.reply_accepted(CORP, "another", AES_KEY, 200, reply)


def test_events_carry_exactly_the_documented_fields(fake):
    added = fake.customer_adds(CORP, "zhangsan", "wmCUSTOMER1", state="gd:abc")
    assert list(added) == [
        "ToUserName", "FromUserName", "CreateTime", "MsgType", "Event", "ChangeType",
        "UserID", "ExternalUserID", "State", "WelcomeCode",
    ]  # fmt: skip
    assert (added["ToUserName"], added["FromUserName"], added["MsgType"]) == (CORP, "sys", "event")
    assert added["ChangeType"] == "add_external_contact" and added["State"] == "gd:abc"
    half = fake.customer_adds(CORP, "lisi", "wmCUSTOMER1", half=True)
    assert half["ChangeType"] == "add_half_external_contact" and "State" not in half
    assert fake.customer_edits(CORP, "zhangsan", "wmCUSTOMER1")["ChangeType"] == (
        "edit_external_contact"
    )
    gone = fake.customer_deletes_guide(CORP, "lisi", "wmCUSTOMER1")
    assert gone["ChangeType"] == "del_follow_user"
    deleted = fake.guide_deletes_customer(CORP, "zhangsan", "wmCUSTOMER1")
    assert deleted["ChangeType"] == "del_external_contact" and "Source" not in deleted
    failed = fake.transfer_fails(CORP, "lisi", "wmCUSTOMER1", "customer_limit_exceed")
    assert (failed["ChangeType"], failed["FailReason"]) == (
        "transfer_fail",
        "customer_limit_exceed",
    )


# --- the API through wechatpy -----------------------------------------------------------


def test_wechatpy_gets_the_documented_shapes(fake, client):
    fake.add_tag(CORP, "etTAG1", "VIP", "等级")
    fake.customer_adds(CORP, "zhangsan", "wmCUSTOMER1", state="gd:abc")
    client.external_contact.mark_tag("zhangsan", "wmCUSTOMER1", add_tag=["etTAG1"])
    client.post(
        "externalcontact/remark",
        data={"userid": "zhangsan", "external_userid": "wmCUSTOMER1", "remark": "老王"},
    )

    detail = client.external_contact.get("wmCUSTOMER1")
    assert detail["errcode"] == 0
    assert detail["external_contact"] == {
        "external_userid": "wmCUSTOMER1",
        "name": "王五",
        "avatar": "http://a/1",
        "type": 1,
        "gender": 2,
        "unionid": "oUnion1",
    }
    [follow] = detail["follow_user"]
    assert follow["userid"] == "zhangsan" and follow["state"] == "gd:abc"
    assert follow["add_way"] == 1 and follow["remark"] == "老王"
    assert follow["tags"] == [
        {"group_name": "等级", "tag_name": "VIP", "tag_id": "etTAG1", "type": 1}
    ]
    assert client.external_contact.list("zhangsan")["external_userid"] == ["wmCUSTOMER1"]

    with pytest.raises(WeChatClientException) as refused:
        client.external_contact.list("lisi")  # no customers
    assert refused.value.errcode == 84061
    with pytest.raises(WeChatClientException) as refused:
        client.external_contact.get("wmNOBODY")
    assert refused.value.errcode == 40096


def test_contact_ways_and_their_qr_codes(fake, client):
    made = client.external_contact.add_contact_way(
        type=1, scene=2, state="gd:abc", user=["zhangsan"]
    )
    assert made["errcode"] == 0 and set(made) == {"errcode", "errmsg", "config_id", "qr_code"}
    image = requests.get(made["qr_code"], timeout=5)
    assert image.headers["Content-Type"] == "image/png" and image.content[:4] == b"\x89PNG"
    way = client.external_contact.get_contact_way(made["config_id"])["contact_way"]
    assert (way["type"], way["scene"], way["state"], way["user"]) == (1, 2, "gd:abc", ["zhangsan"])

    client.external_contact.update_contact_way(made["config_id"], "新备注", state="gd:xyz")
    assert client.external_contact.get_contact_way(made["config_id"])["contact_way"]["state"] == (
        "gd:xyz"
    )
    client.external_contact.del_contact_way(made["config_id"])
    assert requests.get(made["qr_code"], timeout=5).status_code == 404

    def refusal(**kwargs) -> int:
        with pytest.raises(WeChatClientException) as refused:
            client.external_contact.add_contact_way(**kwargs)
        return refused.value.errcode

    assert refusal(type=1, scene=2, state="x" * 31, user=["zhangsan"]) == 40058
    assert refusal(type=1, scene=2, user=["nobody"]) == 60111
    assert refusal(type=3, scene=2, user=["zhangsan"]) == 41039
    with pytest.raises(WeChatClientException) as refused:
        client.external_contact.get_contact_way("missing")
    assert refused.value.errcode == 41044


def test_batch_get_by_user_pages_with_next_cursor(fake, client):
    for n in range(7):
        fake.add_customer(CORP, f"wmPAGE{n}", f"客户{n}")
        fake.customer_adds(CORP, "lisi", f"wmPAGE{n}")
        fake.advance(1)  # distinct createtime, the order pages follow
    seen, cursor, pages = [], "", 0
    while True:
        page = client.post(
            "externalcontact/batch/get_by_user",
            data={"userid_list": ["lisi"], "cursor": cursor, "limit": 3},
        )
        pages += 1
        seen += [
            row["external_contact"]["external_userid"] for row in page["external_contact_list"]
        ]
        assert all(row["follow_info"]["userid"] == "lisi" for row in page["external_contact_list"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and seen == [f"wmPAGE{n}" for n in range(7)]
    # wechatpy's own helper (it still sends the older single `userid`) walks the same pages
    assert len(list(client.external_contact.gen_all_by_user("lisi", limit=2))) == 7
    with pytest.raises(WeChatClientException) as refused:
        client.external_contact.batch_get_by_user("lisi", cursor="not-a-cursor")
    assert refused.value.errcode == 50100


def test_welcome_codes_live_20_seconds_and_work_once(fake, client):
    code = fake.customer_adds(CORP, "zhangsan", "wmCUSTOMER1")["WelcomeCode"]
    message = {"welcome_code": code, "text": {"content": "你好"}}
    assert client.external_contact.send_welcome_msg(message)["errcode"] == 0
    with pytest.raises(WeChatClientException) as refused:
        client.external_contact.send_welcome_msg(message)
    assert refused.value.errcode == 41051

    fake.add_customer(CORP, "wmLATE", "迟到")
    late = fake.customer_adds(CORP, "zhangsan", "wmLATE")["WelcomeCode"]
    fake.advance(21)
    with pytest.raises(WeChatClientException) as refused:
        client.external_contact.send_welcome_msg({"welcome_code": late, "text": {"content": "x"}})
    assert refused.value.errcode == 41050
    with pytest.raises(WeChatClientException) as refused:
        client.external_contact.send_welcome_msg({"text": {"content": "x"}})
    assert refused.value.errcode == 41049


# --- tokens and failures ----------------------------------------------------------------


def test_gettoken_per_secret_and_its_errors(fake):
    contact, agent = token_of(fake), token_of(fake, AGENT_SECRET)
    assert contact != agent and token_of(fake) == contact  # the same while it lives
    answer = raw(fake, "GET", "/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": "x"})
    assert answer["errcode"] == 40001
    answer = raw(fake, "GET", "/cgi-bin/gettoken", params={"corpid": "wwX", "corpsecret": "x"})
    assert answer["errcode"] == 40013
    assert raw(fake, "GET", f"{BASE}/list", params={"userid": "zhangsan"})["errcode"] == 41001
    fake.advance(7201)
    assert token_of(fake) != contact


def test_expired_and_invalid_tokens(fake, client):
    fake.customer_adds(CORP, "zhangsan", "wmCUSTOMER1")
    token = token_of(fake)
    fake.expire_tokens()
    assert (
        raw(fake, "GET", f"{BASE}/list", token, params={"userid": "zhangsan"})["errcode"] == 42001
    )
    fresh = token_of(fake)
    assert fresh != token
    fake.invalidate_tokens()
    assert (
        raw(fake, "GET", f"{BASE}/list", fresh, params={"userid": "zhangsan"})["errcode"] == 40014
    )

    # wechatpy answers 42001 by fetching a new token once and calling again
    assert client.external_contact.list("zhangsan")["errcode"] == 0
    fake.expire_tokens()
    before = fake.calls["/cgi-bin/gettoken"]
    assert client.external_contact.list("zhangsan")["errcode"] == 0
    assert fake.calls["/cgi-bin/gettoken"] == before + 1


def test_fail_next_answers_frequency_limits_first(fake, client):
    fake.customer_adds(CORP, "zhangsan", "wmCUSTOMER1")
    fake.fail_next(f"{BASE}/get", 45033, times=1)
    with pytest.raises(WeChatClientException) as refused:
        client.external_contact.get("wmCUSTOMER1")
    assert refused.value.errcode == 45033
    assert client.external_contact.get("wmCUSTOMER1")["errcode"] == 0


# --- transfers ----------------------------------------------------------------------------


def test_in_service_transfer_waits_then_completes(fake, client):
    fake.customer_adds(CORP, "zhangsan", "wmCUSTOMER1")
    body = {"handover_userid": "zhangsan", "takeover_userid": "lisi"}
    answer = client.post(
        "externalcontact/transfer_customer",
        data={**body, "external_userid": ["wmCUSTOMER1", "wmNOBODY"]},
    )
    assert answer["customer"] == [
        {"external_userid": "wmCUSTOMER1", "errcode": 0},
        {"external_userid": "wmNOBODY", "errcode": 40096},
    ]
    again = client.post(
        "externalcontact/transfer_customer", data={**body, "external_userid": ["wmCUSTOMER1"]}
    )
    assert again["customer"][0]["errcode"] == 40129  # already being transferred
    [waiting] = client.post("externalcontact/transfer_result", data=body)["customer"]
    assert waiting["status"] == 2 and waiting["takeover_time"] > fake.now() + 86000

    [event] = fake.complete_transfers(CORP)
    assert (event["ChangeType"], event["UserID"], event["Source"]) == (
        "del_external_contact",
        "zhangsan",
        "DELETE_BY_TRANSFER",
    )
    [done] = client.post("externalcontact/transfer_result", data=body)["customer"]
    assert done["status"] == 1
    [follow] = client.external_contact.get("wmCUSTOMER1")["follow_user"]
    assert follow["userid"] == "lisi"


def test_resigned_transfer_needs_the_member_gone(fake, client):
    fake.customer_adds(CORP, "zhangsan", "wmCUSTOMER1")
    data = {
        "handover_userid": "zhangsan",
        "takeover_userid": "lisi",
        "external_userid": ["wmCUSTOMER1"],
    }
    with pytest.raises(WeChatClientException) as refused:
        client.post("externalcontact/resigned/transfer_customer", data=data)
    assert refused.value.errcode == 40097
    fake.user_leaves(CORP, "zhangsan")
    answer = client.post("externalcontact/resigned/transfer_customer", data=data)
    assert answer["customer"] == [{"external_userid": "wmCUSTOMER1", "errcode": 0}]
    assert fake.complete_transfers(CORP, status=3)[0]["FailReason"] == "customer_refused"
    result = client.post(
        "externalcontact/resigned/transfer_result",
        data={"handover_userid": "zhangsan", "takeover_userid": "lisi"},
    )
    assert result["customer"][0]["status"] == 3


# --- delivery to a running server ---------------------------------------------------------


def test_deliver_retries_until_the_server_accepts(fake):
    crypto, seen = WeChatCrypto(TOKEN, AES_KEY, CORP), []

    def app(environ, start_response):
        request = Request(environ)
        args = request.args
        seen.append(
            crypto.decrypt_message(
                request.get_data(), args["msg_signature"], args["timestamp"], args["nonce"]
            )
        )
        response = Response("busy", status=503) if len(seen) == 1 else Response("")
        return response(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        fields = fake.customer_adds(CORP, "zhangsan", "wmCUSTOMER1", state="gd:abc")
        url = f"http://127.0.0.1:{server.server_port}/wecom/callback"
        delivery = fake.deliver(url, CORP, TOKEN, AES_KEY, fields, retries=3, timeout=2)
    finally:
        server.shutdown()
        thread.join()
    assert delivery and [a["status"] for a in delivery.attempts] == [503, 200]
    assert seen[0] == seen[1]  # the same event (same CreateTime) both times
