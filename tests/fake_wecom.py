"""A FAKE WeCom (企业微信) server for tests: never the real thing, no internet.

It answers the customer-contact (externalcontact) endpoints guideapp calls, with the request
and response shapes and the error codes of WeCom's public documentation, and it plays WeCom's
side of the callback (URL verification, encrypted event POSTs, retries). Endpoints, all on
qyapi.weixin.qq.com in real life (the fake serves the same paths):
- GET  /cgi-bin/gettoken                                   https://developer.work.weixin.qq.com/document/path/91039
- POST /cgi-bin/externalcontact/add_contact_way            https://developer.work.weixin.qq.com/document/path/92228
- POST /cgi-bin/externalcontact/get_contact_way            (same page)
- POST /cgi-bin/externalcontact/update_contact_way         (same page)
- POST /cgi-bin/externalcontact/del_contact_way            (same page)
- GET  /cgi-bin/externalcontact/get                        https://developer.work.weixin.qq.com/document/path/92114
- GET  /cgi-bin/externalcontact/list                       https://developer.work.weixin.qq.com/document/path/92113
- POST /cgi-bin/externalcontact/batch/get_by_user          https://developer.work.weixin.qq.com/document/path/92994
- POST /cgi-bin/externalcontact/remark                     https://developer.work.weixin.qq.com/document/path/92115
- POST /cgi-bin/externalcontact/mark_tag                   https://developer.work.weixin.qq.com/document/path/92118
- POST /cgi-bin/externalcontact/send_welcome_msg           https://developer.work.weixin.qq.com/document/path/92137
- POST /cgi-bin/externalcontact/transfer_customer          https://developer.work.weixin.qq.com/document/path/92125
- POST /cgi-bin/externalcontact/transfer_result            https://developer.work.weixin.qq.com/document/path/94088
- POST /cgi-bin/externalcontact/resigned/transfer_customer https://developer.work.weixin.qq.com/document/path/94081
- POST /cgi-bin/externalcontact/resigned/transfer_result   https://developer.work.weixin.qq.com/document/path/94082
- GET  /_fake/qr/<config_id>.png  the 「联系我」 QR image qr_code points at (FAKE-only path)
Callbacks: event formats https://developer.work.weixin.qq.com/document/path/92130, the POST
and the URL check https://developer.work.weixin.qq.com/document/path/90930, the crypto
(加解密方案说明) https://developer.work.weixin.qq.com/document/path/90968, implemented here
from that page with `cryptography` and deliberately NOT with wechatpy (the app uses wechatpy:
two independent implementations, so a bug on either side shows).
Error codes (全局错误码 https://developer.work.weixin.qq.com/document/path/90313): HTTP 200
with {errcode, errmsg}. Where a page names no code for a case, the comment says so.

Tests drive it: `add_corp`, `add_user`, `add_customer`, then the customer's and the guide's
actions (`customer_adds`, `customer_edits`, `guide_deletes_customer`, `customer_deletes_guide`,
`transfer_fails`, `complete_transfers`, `user_leaves`) which change the relationships `get`,
`list` and `batch/get_by_user` report and return the callback event's fields; `callback` /
`deliver` turn those fields into WeCom's encrypted POST. `advance(seconds)` moves the fake's
clock (welcome codes live 20 s, tokens 7200 s).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import secrets
import struct
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import requests
import segno
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

# errmsg texts after the global error-code page; the app must key on errcode, never errmsg.
MESSAGES = {
    -1: "system busy",
    40001: "invalid secret",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40058: "invalid parameter",
    40066: "invalid department list",
    40068: "invalid tagid",
    40096: "invalid external userid",
    40097: "user not resigned",
    40098: "user not real name verified",
    40129: "customer is being transferred",
    40130: "handover user is the takeover user",
    40131: "handover user is not a follower of the customer",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41009: "missing userid",
    41035: "missing external userid",
    41037: "missing contact way type",
    41038: "missing contact way scene",
    41039: "invalid contact way type",
    41040: "invalid contact way scene",
    41041: "contact way user count exceeds limit",
    41042: "invalid contact way style",
    41043: "missing contact way config_id",
    41044: "invalid contact way config_id",
    41049: "missing welcome code",
    41050: "invalid welcome code",
    41051: "externaluser has started chatting",
    42001: "access_token expired",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    50100: "invalid cursor",
    60111: "userid not found",
    84061: "not external contact",
    84074: "no external contact privilege",
}

TOKEN_LIFE = 7200  # gettoken: "正常情况下为7200秒"
WELCOME_LIFE = 20  # send_welcome_msg: "仅可在收到相关事件后20秒内调用，且只可调用一次"
TRANSFER_WAIT = 24 * 3600  # transfer_customer: "待24小时后自动接替"
# add_way values (get, 来源定义): 1 扫描二维码; 202 管理员/负责人分配 -- the doc does not say
# which add_way a follow created by a transfer carries; the fake uses 202.
ADD_WAY_QR, ADD_WAY_ASSIGNED = 1, 202


@dataclass
class User:
    """An employee (our guide's WeCom user id)."""

    userid: str
    name: str
    # configured for customer contact (客户联系 使用范围); `list` answers 84074 otherwise
    contact: bool = True
    verified: bool = True  # 实名认证; add_contact_way answers 40098 otherwise
    resigned: bool = False


@dataclass
class Customer:
    """A WeChat user (type 1) or a WeCom user of another corp (type 2)."""

    external_userid: str
    name: str
    unionid: str | None = None
    avatar: str = ""
    type: int = 1
    gender: int = 0
    corp_name: str = ""  # only type 2 has corp_name / corp_full_name / position

    def view(self) -> dict:
        shown: dict[str, Any] = {
            "external_userid": self.external_userid,
            "name": self.name,
            "avatar": self.avatar,
            "type": self.type,
            "gender": self.gender,
        }
        if self.unionid:  # "仅当联系人类型是微信用户，且企业...绑定了微信开发者ID有此字段"
            shown["unionid"] = self.unionid
        if self.type == 2 and self.corp_name:
            shown["corp_name"] = self.corp_name
            shown["corp_full_name"] = self.corp_name
        return shown


@dataclass
class Follow:
    """One member following one customer (follow_user / follow_info)."""

    userid: str
    external_userid: str
    createtime: int
    add_way: int
    oper_userid: str
    state: str | None = None
    remark: str = ""
    description: str = ""
    remark_corp_name: str = ""
    remark_mobiles: list[str] = field(default_factory=list)
    tag_ids: list[str] = field(default_factory=list)
    deleted_by_customer: bool = False
    welcome_sent: bool = False

    def base(self) -> dict:
        shown: dict[str, Any] = {
            "userid": self.userid,
            "remark": self.remark,
            "description": self.description,
            "createtime": self.createtime,
            "remark_corp_name": self.remark_corp_name,
            "remark_mobiles": list(self.remark_mobiles),
            "oper_userid": self.oper_userid,
            "add_way": self.add_way,
        }
        if self.state is not None:  # "state 否": only when added through a 「联系我」 with one
            shown["state"] = self.state
        return shown


@dataclass
class Tag:
    tag_id: str
    name: str
    group_name: str


@dataclass
class ContactWay:
    config_id: str
    type: int
    scene: int
    style: int | None
    remark: str
    skip_verify: bool
    state: str | None
    user: list[str]
    party: list[int]
    qr_code: str | None


@dataclass
class Transfer:
    """One customer handed from one member to another (在职 onjob or 离职 resigned)."""

    kind: str  # "onjob" | "resigned"
    handover_userid: str
    takeover_userid: str
    external_userid: str
    started: int
    status: int = 2  # 1 接替完毕 2 等待接替 3 客户拒绝 4 接替成员客户达到上限
    takeover_time: int = 0


@dataclass
class WelcomeCode:
    userid: str
    external_userid: str
    issued: int
    used: bool = False


@dataclass
class Corp:
    corp_id: str
    contact_secret: str
    agent_id: int
    agent_secret: str
    users: dict[str, User] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    follows: dict[tuple[str, str], Follow] = field(default_factory=dict)  # (userid, ext)
    tags: dict[str, Tag] = field(default_factory=dict)
    contact_ways: dict[str, ContactWay] = field(default_factory=dict)
    transfers: list[Transfer] = field(default_factory=list)
    welcome_codes: dict[str, WelcomeCode] = field(default_factory=dict)

    def follows_of_user(self, userid: str) -> list[Follow]:
        return sorted(
            (f for (u, _), f in self.follows.items() if u == userid),
            key=lambda f: (f.createtime, f.external_userid),
        )

    def follows_of_customer(self, external_userid: str) -> list[Follow]:
        return sorted(
            (f for (_, e), f in self.follows.items() if e == external_userid),
            key=lambda f: (f.createtime, f.userid),
        )


@dataclass
class Token:
    corp_id: str
    secret_kind: str  # "contact" | "agent": each secret gets its own tokens
    issued: float
    state: str = "live"  # "live" | "expired" (42001) | "invalid" (40014)


@dataclass
class Delivery:
    """What happened to one event `deliver` posted; truthy when WeCom would be content."""

    ok: bool
    attempts: list[dict] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok


# --- the crypto of 加解密方案说明, from the page ----------------------------------------


def aes_key(encoding_aes_key: str) -> bytes:
    """AESKey = Base64_Decode(EncodingAESKey + "="), 32 bytes."""
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:
        raise ValueError("EncodingAESKey must be 43 characters (32 bytes once decoded)")
    return key


def encrypt(encoding_aes_key: str, msg: str, receiveid: str, random16: bytes | None = None) -> str:
    """msg_encrypt = Base64_Encode(AES_Encrypt(random(16B) + msg_len(4B) + msg + receiveid)):
    AES-256-CBC, IV = AESKey[:16], PKCS#7 padded to a multiple of 32 bytes."""
    key = aes_key(encoding_aes_key)
    body = msg.encode()
    plain = (random16 or secrets.token_bytes(16)) + struct.pack(">I", len(body)) + body
    padder = padding.PKCS7(256).padder()  # 256 bits: the page pads to 32-byte blocks
    padded = padder.update(plain + receiveid.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


def decrypt(encoding_aes_key: str, msg_encrypt: str, receiveid: str | None = None) -> str:
    """The inverse; checks the trailing receiveid when one is given (ValueError otherwise)."""
    key = aes_key(encoding_aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    padded = decryptor.update(base64.b64decode(msg_encrypt)) + decryptor.finalize()
    unpadder = padding.PKCS7(256).unpadder()
    plain = unpadder.update(padded) + unpadder.finalize()
    (length,) = struct.unpack(">I", plain[16:20])
    msg, tail = plain[20 : 20 + length], plain[20 + length :].decode()
    if receiveid is not None and tail != receiveid:
        raise ValueError(f"receiveid {tail!r} is not {receiveid!r}")
    return msg.decode()


def signature(token: str, timestamp: str, nonce: str, msg_encrypt: str) -> str:
    """msg_signature = sha1(sort(token, timestamp, nonce, msg_encrypt))."""
    return hashlib.sha1(
        "".join(sorted([token, timestamp, nonce, msg_encrypt])).encode()
    ).hexdigest()


def event_xml(fields: dict) -> str:
    """The plaintext event as WeCom writes it: strings in CDATA, integers bare (92130)."""
    parts = []
    for name, value in fields.items():
        text = str(value) if isinstance(value, int) else f"<![CDATA[{value}]]>"
        parts.append(f"<{name}>{text}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def _xml_text(document: str, name: str) -> str | None:
    """One element's text out of a flat WeCom XML (enough for a reply to the fake)."""
    try:
        found = ElementTree.fromstring(document).find(name)
    except ElementTree.ParseError:
        return None
    return None if found is None else (found.text or "")


# --- the fake ---------------------------------------------------------------------------


@dataclass
class FakeWecom:
    """The fake's state; `url` is its base (GUIDEAPP_WECOM_API_BASE in tests)."""

    corps: dict[str, Corp] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    failures: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    delays: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    calls: Counter = field(default_factory=Counter)
    requests: list[tuple[str, dict, bytes]] = field(default_factory=list)
    offset: float = 0.0  # seconds `advance` added to the fake's clock
    url: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)

    # --- what tests do ---------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock on (welcome codes expire after 20 s, tokens after 7200 s)."""
        self.offset += seconds

    def add_corp(self, corp_id: str, contact_secret: str, agent_id: int, agent_secret: str) -> Corp:
        """A corp with its 客户联系 secret and one self-built app (in 可调用应用)."""
        self.corps[corp_id] = Corp(corp_id, contact_secret, agent_id, agent_secret)
        return self.corps[corp_id]

    def add_user(
        self,
        corp_id: str,
        userid: str,
        name: str = "",
        *,
        contact: bool = True,
        verified: bool = True,
    ) -> User:
        user = User(userid, name or userid, contact=contact, verified=verified)
        self.corps[corp_id].users[userid] = user
        return user

    def add_customer(
        self,
        corp_id: str,
        external_userid: str,
        name: str,
        unionid: str | None = None,
        avatar: str = "",
        type: int = 1,
        gender: int = 0,
        corp_name: str = "",
    ) -> Customer:
        customer = Customer(external_userid, name, unionid, avatar, type, gender, corp_name)
        self.corps[corp_id].customers[external_userid] = customer
        return customer

    def add_tag(self, corp_id: str, tag_id: str, name: str, group_name: str = "标签组") -> Tag:
        """An enterprise tag (企业标签) mark_tag may use."""
        self.corps[corp_id].tags[tag_id] = Tag(tag_id, name, group_name)
        return self.corps[corp_id].tags[tag_id]

    def user_leaves(self, corp_id: str, userid: str) -> None:
        """The member resigns: resigned/transfer_customer accepts them as handover_userid."""
        self.corps[corp_id].users[userid].resigned = True

    def _event(self, corp_id: str, change_type: str, userid: str, external_userid: str) -> dict:
        # The header every change_external_contact event carries (92130).
        return {
            "ToUserName": corp_id,
            "FromUserName": "sys",
            "CreateTime": int(self.now()),
            "MsgType": "event",
            "Event": "change_external_contact",
            "ChangeType": change_type,
            "UserID": userid,
            "ExternalUserID": external_userid,
        }

    def customer_adds(
        self,
        corp_id: str,
        userid: str,
        external_userid: str,
        state: str | None = None,
        half: bool = False,
        welcome: bool = True,
    ) -> dict:
        """The customer adds the member (scanning a 「联系我」 QR with `state`): the follow
        exists from now (add_way 1), and the event's fields come back. `half`: the
        add_half_external_contact event (免验证添加, member not yet confirmed). `welcome=False`:
        the member has a welcome message configured in the admin, so no WelcomeCode ("如果企业
        已经在管理端为相关成员配置了可用的欢迎语，则推送添加外部联系人事件时不会返回welcome_code")."""
        with self.lock:
            corp = self.corps[corp_id]
            assert userid in corp.users and external_userid in corp.customers, "add them first"
            now = int(self.now())
            follow = corp.follows.get((userid, external_userid))
            if follow is None:
                follow = Follow(userid, external_userid, now, ADD_WAY_QR, external_userid, state)
                corp.follows[(userid, external_userid)] = follow
            follow.deleted_by_customer = False
            change = "add_half_external_contact" if half else "add_external_contact"
            fields = self._event(corp_id, change, userid, external_userid)
            if state is not None:  # the doc's sample always has State; without a 「联系我」
                fields["State"] = state  # state there is none to send (doc silent): omitted
            # "如果外部联系人和成员已经开始聊天或已通过「外部联系人免验证添加成员事件」得到的
            # welcomecode发送欢迎语，则不会继续返回welcomecode"
            if welcome and not follow.welcome_sent:
                code = secrets.token_urlsafe(24)
                corp.welcome_codes[code] = WelcomeCode(userid, external_userid, now)
                fields["WelcomeCode"] = code
            return fields

    def customer_edits(
        self,
        corp_id: str,
        userid: str,
        external_userid: str,
        remark: str | None = None,
        description: str | None = None,
    ) -> dict:
        """The member edits the customer's remark or tags in the client: edit_external_contact."""
        follow = self.corps[corp_id].follows[(userid, external_userid)]
        if remark is not None:
            follow.remark = remark
        if description is not None:
            follow.description = description
        return self._event(corp_id, "edit_external_contact", userid, external_userid)

    def guide_deletes_customer(
        self, corp_id: str, userid: str, external_userid: str, source: str | None = None
    ) -> dict:
        """The member deletes the customer: the follow is gone; del_external_contact. `source`
        is the event's Source, documented only as DELETE_BY_TRANSFER (在职继承)."""
        with self.lock:
            del self.corps[corp_id].follows[(userid, external_userid)]
            fields = self._event(corp_id, "del_external_contact", userid, external_userid)
            if source is not None:
                fields["Source"] = source
            return fields

    def customer_deletes_guide(
        self, corp_id: str, userid: str, external_userid: str, keep: bool = True
    ) -> dict:
        """The customer deletes the member: del_follow_user. The doc does not say whether the
        member's side survives for `get`/`list`; the fake keeps it (the member still has the
        contact until they delete it too) unless `keep=False`."""
        with self.lock:
            corp = self.corps[corp_id]
            if keep:
                corp.follows[(userid, external_userid)].deleted_by_customer = True
            else:
                del corp.follows[(userid, external_userid)]
            return self._event(corp_id, "del_follow_user", userid, external_userid)

    def transfer_fails(
        self,
        corp_id: str,
        userid: str,
        external_userid: str,
        reason: str = "customer_refused",
    ) -> dict:
        """The transfer of the customer to takeover member `userid` fails: transfer_fail with
        FailReason customer_refused (status 3) or customer_limit_exceed (status 4). The page
        says UserID is "企业服务人员的UserID" without saying which side; the fake sends the
        takeover member's."""
        assert reason in ("customer_refused", "customer_limit_exceed")
        with self.lock:
            for transfer in self.corps[corp_id].transfers:
                if (
                    transfer.status == 2
                    and transfer.takeover_userid == userid
                    and transfer.external_userid == external_userid
                ):
                    transfer.status = 3 if reason == "customer_refused" else 4
                    transfer.takeover_time = 0  # the doc's sample shows 0 for a refusal
            fields = self._event(corp_id, "transfer_fail", userid, external_userid)
            fields["FailReason"] = reason
            return fields

    def complete_transfers(self, corp_id: str | None = None, status: int = 1) -> list[dict]:
        """What WeCom does 24 h after transfer_customer, now: every waiting transfer ends in
        `status` (1 接替完毕: the takeover member follows the customer; an in-service handover
        loses them, with del_external_contact Source DELETE_BY_TRANSFER; 3 / 4: transfer_fail).
        Returns the events' fields in order."""
        assert status in (1, 3, 4)
        events: list[dict] = []
        with self.lock:
            for corp in self.corps.values():
                if corp_id is not None and corp.corp_id != corp_id:
                    continue
                for transfer in [t for t in corp.transfers if t.status == 2]:
                    if status != 1:
                        reason = "customer_refused" if status == 3 else "customer_limit_exceed"
                        events.append(
                            self.transfer_fails(
                                corp.corp_id,
                                transfer.takeover_userid,
                                transfer.external_userid,
                                reason,
                            )
                        )
                        continue
                    now = int(self.now())
                    transfer.status, transfer.takeover_time = 1, now
                    old = corp.follows.pop(
                        (transfer.handover_userid, transfer.external_userid), None
                    )
                    key = (transfer.takeover_userid, transfer.external_userid)
                    if key not in corp.follows:
                        corp.follows[key] = Follow(
                            transfer.takeover_userid,
                            transfer.external_userid,
                            now,
                            ADD_WAY_ASSIGNED,
                            transfer.handover_userid,
                            old.state if old else None,
                            tag_ids=list(old.tag_ids) if old else [],
                        )
                    if transfer.kind == "onjob":
                        fields = self._event(
                            corp.corp_id,
                            "del_external_contact",
                            transfer.handover_userid,
                            transfer.external_userid,
                        )
                        fields["Source"] = "DELETE_BY_TRANSFER"
                        events.append(fields)
        return events

    def expire_tokens(self) -> None:
        """Every access token issued so far answers 42001 from now on."""
        for token in self.tokens.values():
            token.state = "expired"

    def invalidate_tokens(self) -> None:
        """Every access token issued so far answers 40014 from now on."""
        for token in self.tokens.values():
            token.state = "invalid"

    def fail_next(self, path: str, errcode: int, times: int = 1) -> None:
        """The next `times` calls of `path` answer `errcode` (45033, 45009, -1...)."""
        self.failures[path].extend([errcode] * times)

    def delay_next(self, path: str, seconds: float, times: int = 1) -> None:
        """The next `times` calls of `path` answer only after `seconds` (a slow WeCom: the
        caller can be killed while it waits). Other calls are not held up meanwhile."""
        self.delays[path].extend([seconds] * times)

    def reset(self) -> None:
        """Forget everything but the url (the shared server outlives each test)."""
        url = self.url
        self.__init__()  # type: ignore[misc]
        self.url = url

    # --- WeCom's side of the callback -------------------------------------------------

    def _nonce(self) -> str:
        return str(secrets.randbelow(10**10))

    def callback(
        self,
        corp_id: str,
        token: str,
        encoding_aes_key: str,
        fields: dict,
        agent_id: int | None = None,
        timestamp: str | None = None,
        nonce: str | None = None,
    ) -> tuple[dict, str]:
        """WeCom's POST to the callback URL: (query args {msg_signature, timestamp, nonce},
        XML body <xml><ToUserName/><Encrypt/><AgentID/></xml>). The 客户联系 callback belongs
        to no app, and the page is silent on AgentID there: the fake sends it only when an
        `agent_id` is given (the app must not need it)."""
        msg_encrypt = encrypt(encoding_aes_key, event_xml(fields), corp_id)
        timestamp = timestamp or str(int(self.now()))
        nonce = nonce or self._nonce()
        args = {
            "msg_signature": signature(token, timestamp, nonce, msg_encrypt),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        body = f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>"
        body += f"<Encrypt><![CDATA[{msg_encrypt}]]></Encrypt>"
        if agent_id is not None:
            body += f"<AgentID><![CDATA[{agent_id}]]></AgentID>"
        return args, body + "</xml>"

    def verify_url_args(
        self,
        corp_id: str,
        token: str,
        encoding_aes_key: str,
        echo: str = "1616140317555161061",
        timestamp: str | None = None,
        nonce: str | None = None,
    ) -> dict:
        """The GET WeCom sends when HQ saves the callback URL; the app must answer the
        decrypted echostr as is ("必须原样返回，不要做加引号或其它处理")."""
        echostr = encrypt(encoding_aes_key, echo, corp_id)
        timestamp = timestamp or str(int(self.now()))
        nonce = nonce or self._nonce()
        return {
            "msg_signature": signature(token, timestamp, nonce, echostr),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }

    def reply_accepted(
        self, corp_id: str, token: str, encoding_aes_key: str, status: int, body: str
    ) -> bool:
        """Whether WeCom takes the callback's reply: HTTP 200 and an empty body ("可以直接
        返回200（即以空串为返回包）"), "success", or a passive reply encrypted and signed for
        this corp."""
        if status != 200:
            return False
        if body.strip() in ("", "success"):
            return True
        encrypted, signed = _xml_text(body, "Encrypt"), _xml_text(body, "MsgSignature")
        timestamp, nonce = _xml_text(body, "TimeStamp"), _xml_text(body, "Nonce")
        if encrypted is None or signed is None or timestamp is None or nonce is None:
            return False
        if signature(token, timestamp, nonce, encrypted) != signed:
            return False
        try:
            decrypt(encoding_aes_key, encrypted, corp_id)
        except ValueError:
            return False
        return True

    def deliver(
        self,
        url: str,
        corp_id: str,
        token: str,
        encoding_aes_key: str,
        fields: dict,
        retries: int = 3,
        timeout: float = 5.0,
        agent_id: int | None = None,
    ) -> Delivery:
        """A real HTTP POST of the event to a running server, as WeCom does it: no accepted
        reply within 5 s (see reply_accepted) and it tries again, "总共重试三次" (1 + `retries`
        attempts). Each attempt is signed afresh; the event (its CreateTime, by which the page
        tells apps to deduplicate retries) stays the same."""
        delivery = Delivery(ok=False)
        for _ in range(1 + retries):
            args, body = self.callback(corp_id, token, encoding_aes_key, fields, agent_id)
            started = time.monotonic()
            attempt: dict[str, Any] = {"args": args}
            try:
                response = requests.post(
                    url,
                    params=args,
                    data=body.encode(),
                    headers={"Content-Type": "text/xml"},
                    timeout=timeout,
                )
            except requests.RequestException as error:
                attempt.update(status=None, body="", error=type(error).__name__)
            else:
                attempt.update(status=response.status_code, body=response.text)
            attempt["seconds"] = time.monotonic() - started
            delivery.attempts.append(attempt)
            if attempt["status"] is not None and self.reply_accepted(
                corp_id, token, encoding_aes_key, attempt["status"], attempt["body"]
            ):
                delivery.ok = True
                break
        return delivery

    # --- the server ---------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        self.calls[request.path] += 1
        self.requests.append((request.path, dict(request.args), request.get_data()))
        handler = ROUTES.get((request.method, request.path))
        with self.lock:
            delay = self.delays[request.path].pop(0) if self.delays[request.path] else 0.0
        if delay:
            time.sleep(delay)  # outside the lock: only this call is slow
        with self.lock:
            if request.path.startswith("/_fake/qr/") and request.method == "GET":
                response = _qr_image(self, request)
            elif handler is None:
                response = Response("not found", status=404)
            elif self.failures[request.path]:
                response = _error(self.failures[request.path].pop(0))
            elif request.path == "/cgi-bin/gettoken":
                response = handler(self, request)
            else:
                corp = self._corp_of(request)
                if isinstance(corp, Response):
                    response = corp
                else:
                    body = _body(request)
                    response = (
                        _error(40058, "Warning: wrong json format.")
                        if body is None
                        else handler(self, corp, body)
                    )
        return response(environ, start_response)

    def _corp_of(self, request: Request) -> Corp | Response:
        token = request.args.get("access_token")
        if not token:
            return _error(41001)
        issued = self.tokens.get(token)
        if issued is None or issued.state == "invalid":
            return _error(40014)
        if issued.state == "expired" or issued.issued + TOKEN_LIFE <= self.now():
            return _error(42001)
        return self.corps[issued.corp_id]


def _json(payload: dict) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), mimetype="application/json")


def _ok(**payload) -> Response:
    return _json({"errcode": 0, "errmsg": "ok", **payload})


def _error(errcode: int, detail: str | None = None) -> Response:
    # WeCom's errmsg carries a hint and the code's lookup link; never a secret.
    hint = f"{int(time.time())}-{secrets.token_hex(4)}"
    message = detail or MESSAGES.get(errcode, "error")
    return _json(
        {
            "errcode": errcode,
            "errmsg": f"{message}, hint: [{hint}], from ip: 127.0.0.1, more info at "
            f"https://open.work.weixin.qq.com/devtool/query?e={errcode}",
        }
    )


def _body(request: Request) -> dict | None:
    """The JSON body of a POST ({} for a GET); None when it is not JSON."""
    if request.method != "POST":
        return dict(request.args)
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _gettoken(fake: FakeWecom, request: Request) -> Response:
    corp_id, secret = request.args.get("corpid"), request.args.get("corpsecret")
    if not corp_id:
        return _error(41002)
    if not secret:
        return _error(41004)
    corp = fake.corps.get(corp_id)
    if corp is None:
        return _error(40013)
    kinds = {corp.contact_secret: "contact", corp.agent_secret: "agent"}
    if secret not in kinds:
        return _error(40001)
    # "有效期内重复获取返回相同结果，过期后获取会返回新的access_token"
    now = fake.now()
    for value, token in fake.tokens.items():
        live = token.state == "live" and token.issued + TOKEN_LIFE > now
        if live and token.corp_id == corp_id and token.secret_kind == kinds[secret]:
            return _ok(access_token=value, expires_in=int(token.issued + TOKEN_LIFE - now))
    value = secrets.token_urlsafe(48)
    fake.tokens[value] = Token(corp_id, kinds[secret], now)
    return _ok(access_token=value, expires_in=TOKEN_LIFE)


# --- 「联系我」 ----------------------------------------------------------------------------


def _contact_way_refusal(corp: Corp, body: dict, way_type: int) -> Response | None:
    """The checks add_contact_way and update_contact_way share."""
    users, party = body.get("user") or [], body.get("party") or []
    if not isinstance(users, list) or not isinstance(party, list):
        return _error(40058)
    if way_type == 1 and len(users) != 1:
        # "user: 在type为1时为必填，且只能有一个"; the page names no code: 40058
        return _error(40058, "type 1 takes exactly one user")
    if len(users) > 100:  # "每个联系方式最多配置100个使用成员"
        return _error(41041)
    for userid in users:
        user = corp.users.get(userid)
        if user is None or user.resigned:
            return _error(60111)
        if not user.verified:
            return _error(40098)
    if party:  # the fake has no departments
        return _error(40066)
    # state "不超过30个字符", remark "不超过30个字符": the page names no code: 40058
    state, remark = body.get("state"), body.get("remark")
    if state is not None and (not isinstance(state, str) or len(state) > 30):
        return _error(40058, "state is longer than 30 characters")
    if remark is not None and (not isinstance(remark, str) or len(remark) > 30):
        return _error(40058, "remark is longer than 30 characters")
    style = body.get("style")
    if style is not None and not isinstance(style, int):
        return _error(41042)
    return None


def _add_contact_way(fake: FakeWecom, corp: Corp, body: dict) -> Response:
    if "type" not in body:
        return _error(41037)
    if "scene" not in body:
        return _error(41038)
    if body["type"] not in (1, 2):
        return _error(41039)
    if body["scene"] not in (1, 2):
        return _error(41040)
    if (refused := _contact_way_refusal(corp, body, body["type"])) is not None:
        return refused
    config_id = secrets.token_hex(16)
    qr_code = f"{fake.url}/_fake/qr/{config_id}.png" if body["scene"] == 2 else None
    corp.contact_ways[config_id] = ContactWay(
        config_id,
        body["type"],
        body["scene"],
        body.get("style"),
        body.get("remark") or "",
        bool(body.get("skip_verify", True)),  # "默认为true"
        body.get("state"),
        list(body.get("user") or []),
        list(body.get("party") or []),
        qr_code,
    )
    if qr_code is None:  # "qr_code: 联系我二维码链接，仅在scene为2时返回"
        return _ok(config_id=config_id)
    return _ok(config_id=config_id, qr_code=qr_code)


def _contact_way_of(corp: Corp, body: dict) -> ContactWay | Response:
    config_id = body.get("config_id")
    if not config_id:
        return _error(41043)
    way = corp.contact_ways.get(config_id)
    return _error(41044) if way is None else way


def _get_contact_way(fake: FakeWecom, corp: Corp, body: dict) -> Response:
    way = _contact_way_of(corp, body)
    if isinstance(way, Response):
        return way
    shown: dict[str, Any] = {
        "config_id": way.config_id,
        "type": way.type,
        "scene": way.scene,
        "remark": way.remark,
        "skip_verify": way.skip_verify,
        "user": way.user,
        "party": way.party,
        "is_temp": False,
    }
    if way.state is not None:
        shown["state"] = way.state
    if way.scene == 1 and way.style is not None:  # "style: 仅在scene为1时返回"
        shown["style"] = way.style
    if way.qr_code:
        shown["qr_code"] = way.qr_code
    return _ok(contact_way=shown)


def _update_contact_way(fake: FakeWecom, corp: Corp, body: dict) -> Response:
    way = _contact_way_of(corp, body)
    if isinstance(way, Response):
        return way
    if (refused := _contact_way_refusal(corp, {"user": way.user, **body}, way.type)) is not None:
        return refused
    # Every field given overwrites ("将覆盖之前的备注", "将覆盖原有用户列表"); absent ones stay.
    if "remark" in body:
        way.remark = body["remark"] or ""
    if "skip_verify" in body:
        way.skip_verify = bool(body["skip_verify"])
    if "style" in body:
        way.style = body["style"]
    if "state" in body:
        way.state = body["state"]
    if "user" in body:
        way.user = list(body["user"] or [])
    return _ok()


def _del_contact_way(fake: FakeWecom, corp: Corp, body: dict) -> Response:
    way = _contact_way_of(corp, body)
    if isinstance(way, Response):
        return way
    del corp.contact_ways[way.config_id]
    return _ok()


def _qr_image(fake: FakeWecom, request: Request) -> Response:
    """The 「联系我」 QR as a PNG. The page does not say what WeCom's image encodes; the fake
    encodes the config_id, so a test can tell which 「联系我」 an image belongs to."""
    config_id = request.path.removeprefix("/_fake/qr/").removesuffix(".png")
    if not any(config_id in corp.contact_ways for corp in fake.corps.values()):
        return Response("not found", status=404)
    buffer = io.BytesIO()
    segno.make(f"https://work.weixin.qq.com/ca/{config_id}", error="m").save(
        buffer, kind="png", scale=4
    )
    return Response(buffer.getvalue(), mimetype="image/png")


# --- customers ----------------------------------------------------------------------------


def _tags_of(corp: Corp, follow: Follow) -> list[dict]:
    return [
        {
            "group_name": corp.tags[t].group_name,
            "tag_name": corp.tags[t].name,
            "tag_id": t,
            "type": 1,  # 1-企业设置: the fake has only enterprise tags
        }
        for t in follow.tag_ids
        if t in corp.tags
    ]


def _get(fake: FakeWecom, corp: Corp, body: dict) -> Response:
    external_userid = body.get("external_userid")
    if not external_userid:
        return _error(41035)
    customer = corp.customers.get(external_userid)
    if customer is None:
        return _error(40096)
    follows = corp.follows_of_customer(external_userid)
    if not follows:
        return _error(84061)
    # follow_user pages by cursor past 500 followers; the fake's tests never have that many.
    return _ok(
        external_contact=customer.view(),
        follow_user=[{**f.base(), "tags": _tags_of(corp, f)} for f in follows],
    )


def _list(fake: FakeWecom, corp: Corp, body: dict) -> Response:
    userid = body.get("userid")
    if not userid:
        return _error(41009)
    user = corp.users.get(userid)
    if user is None:
        return _error(60111)
    if not user.contact:
        # The page names no code for a member outside 客户联系's 使用范围; the global list's
        # 84074 "没有外部联系人权限" is the one that fits.
        return _error(84074)
    follows = corp.follows_of_user(userid)
    if not follows:
        # The page names no code; WeCom answers a member without customers with 84061
        # "不存在外部联系人的关系" (SDKs treat it as "this member has no customers").
        return _error(84061)
    return _ok(external_userid=[f.external_userid for f in follows])


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: str) -> int | None:
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        return int(value) if kind == "offset" else None
    except (ValueError, UnicodeDecodeError):
        return None


def _batch_get_by_user(fake: FakeWecom, corp: Corp, body: dict) -> Response:
    # The page takes userid_list (≤100); wechatpy 2.0.0a26's batch_get_by_user still sends the
    # older single `userid`, which WeCom keeps accepting: the fake takes both.
    userids = body.get("userid_list")
    if userids is None and body.get("userid"):
        userids = [body["userid"]]
    if not userids:
        return _error(41009)
    if not isinstance(userids, list) or len(userids) > 100:
        return _error(40058, "userid_list holds at most 100 userids")
    limit = body.get("limit") or 50  # "默认值50"
    if not isinstance(limit, int) or limit < 1:
        return _error(40058)
    limit = min(limit, 100)  # "最大值100 ... 超过最大值时取最大值"
    offset = 0
    if body.get("cursor"):
        decoded = _decode_cursor(str(body["cursor"]))
        if decoded is None:
            return _error(50100)
        offset = decoded
    for userid in userids:
        if userid not in corp.users:
            return _error(60111)
    rows = [f for userid in userids for f in corp.follows_of_user(userid)]
    page = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    return _ok(
        external_contact_list=[
            {
                "external_contact": corp.customers[f.external_userid].view(),
                # "标签信息只会返回企业标签和规则组标签的tag_id"
                "follow_info": {**f.base(), "tag_id": list(f.tag_ids)},
            }
            for f in page
        ],
        # "如果已经没有更多的数据则返回空"
        next_cursor=_encode_cursor(offset + limit) if more else "",
    )


def _follow_of(corp: Corp, body: dict) -> Follow | Response:
    userid, external_userid = body.get("userid"), body.get("external_userid")
    if not userid:
        return _error(41009)
    if not external_userid:
        return _error(41035)
    if userid not in corp.users:
        return _error(60111)
    if external_userid not in corp.customers:
        return _error(40096)
    follow = corp.follows.get((userid, external_userid))
    return _error(84061) if follow is None else follow


def _remark(fake: FakeWecom, corp: Corp, body: dict) -> Response:
    follow = _follow_of(corp, body)
    if isinstance(follow, Response):
        return follow
    given = [k for k in ("remark", "description", "remark_company", "remark_mobiles") if k in body]
    if not given and "remark_pic_mediaid" not in body:
        # "remark，description，remark_company，remark_mobiles和remark_pic_mediaid不可同时为空";
        # the page names no code: 40058
        return _error(40058, "nothing to remark")
    limits = {"remark": 20, "description": 150, "remark_company": 20}
    for key, most in limits.items():
        if key in body and (not isinstance(body[key], str) or len(body[key]) > most):
            return _error(40058, f"{key} is longer than {most} characters")  # no code named
    if "remark" in body:
        follow.remark = body["remark"]
    if "description" in body:
        follow.description = body["description"]
    if "remark_company" in body:
        follow.remark_corp_name = body["remark_company"]
    if "remark_mobiles" in body:
        # "如果要清除所有备注手机号,请在remark_mobiles填写一个空字符串"
        follow.remark_mobiles = [m for m in body["remark_mobiles"] or [] if m]
    return _ok()


def _mark_tag(fake: FakeWecom, corp: Corp, body: dict) -> Response:
    follow = _follow_of(corp, body)
    if isinstance(follow, Response):
        return follow
    add, remove = body.get("add_tag") or [], body.get("remove_tag") or []
    if not add and not remove:  # "add_tag和remove_tag不可同时为空"; no code named: 40058
        return _error(40058, "add_tag and remove_tag are both empty")
    if any(t not in corp.tags for t in [*add, *remove]):
        return _error(40068)
    follow.tag_ids = [t for t in follow.tag_ids if t not in remove]
    follow.tag_ids += [t for t in add if t not in follow.tag_ids]
    return _ok()


def _send_welcome_msg(fake: FakeWecom, corp: Corp, body: dict) -> Response:
    code = body.get("welcome_code")
    if not code:
        return _error(41049)
    welcome = corp.welcome_codes.get(code)
    # 41050 "欢迎语code(welcome_code)具有时效性，须在添加好友后20秒内使用"
    if welcome is None or welcome.issued + WELCOME_LIFE < fake.now():
        return _error(41050)
    if welcome.used:
        # "仅有最先调用的可以发送成功。后续调用将返回41051（externaluser has started chatting）"
        return _error(41051)
    if not any(k in body for k in ("text", "attachments")):  # "text和attachments不能同时为空"
        return _error(40058, "text and attachments are both empty")
    welcome.used = True
    follow = corp.follows.get((welcome.userid, welcome.external_userid))
    if follow is not None:
        follow.welcome_sent = True
    return _ok()


# --- 在职继承 and 离职继承 -------------------------------------------------------------------


def _transfer(kind: str):
    def handler(fake: FakeWecom, corp: Corp, body: dict) -> Response:
        handover, takeover = body.get("handover_userid"), body.get("takeover_userid")
        external_userids = body.get("external_userid") or []
        if not handover or not takeover:
            return _error(41009)
        if handover not in corp.users or takeover not in corp.users:
            return _error(60111)
        if corp.users[takeover].resigned:
            return _error(60111)  # a resigned member cannot take over; no code named
        if kind == "resigned" and not corp.users[handover].resigned:
            return _error(40097)  # "离职成员外部联系人转移接口要求转出用户必须已经离职"
        if not external_userids:
            return _error(41035)
        if not isinstance(external_userids, list) or len(external_userids) > 100:
            return _error(40058, "at most 100 external_userid at a time")  # no code named
        now = int(fake.now())
        results = []
        for external_userid in external_userids:
            results.append(
                {
                    "external_userid": external_userid,
                    "errcode": _transfer_one(corp, kind, handover, takeover, external_userid, now),
                }
            )
        return _ok(customer=results)

    return handler


def _transfer_one(
    corp: Corp, kind: str, handover: str, takeover: str, external_userid: str, now: int
) -> int:
    """One customer's errcode in `customer` ("0表示开始分配流程，待24小时后自动接替")."""
    if external_userid not in corp.customers:
        return 40096
    if handover == takeover:
        return 40130
    if (handover, external_userid) not in corp.follows:
        return 40131
    if any(t.status == 2 and t.external_userid == external_userid for t in corp.transfers):
        return 40129
    corp.transfers.append(
        Transfer(kind, handover, takeover, external_userid, now, 2, now + TRANSFER_WAIT)
    )
    return 0


def _transfer_result(kind: str):
    def handler(fake: FakeWecom, corp: Corp, body: dict) -> Response:
        handover, takeover = body.get("handover_userid"), body.get("takeover_userid")
        if not handover or not takeover:
            return _error(41009)
        rows = [
            t
            for t in corp.transfers
            if t.kind == kind and t.handover_userid == handover and t.takeover_userid == takeover
        ]
        # The page pages by cursor without a page size; the fake pages by 1000. Status 5
        # (无接替记录) the page lists without saying when it shows; the fake never sends it.
        offset = 0
        if body.get("cursor"):
            decoded = _decode_cursor(str(body["cursor"]))
            if decoded is None:
                return _error(50100)
            offset = decoded
        page = rows[offset : offset + 1000]
        payload: dict[str, Any] = {
            "customer": [
                {
                    "external_userid": t.external_userid,
                    "status": t.status,
                    # "接替客户的时间，如果是等待接替状态，则为未来的自动接替时间"
                    "takeover_time": t.takeover_time,
                }
                for t in page
            ]
        }
        if offset + 1000 < len(rows):
            payload["next_cursor"] = _encode_cursor(offset + 1000)
        return _ok(**payload)

    return handler


ROUTES: dict[tuple[str, str], Any] = {
    ("GET", "/cgi-bin/gettoken"): _gettoken,
    ("POST", "/cgi-bin/externalcontact/add_contact_way"): _add_contact_way,
    ("POST", "/cgi-bin/externalcontact/get_contact_way"): _get_contact_way,
    ("POST", "/cgi-bin/externalcontact/update_contact_way"): _update_contact_way,
    ("POST", "/cgi-bin/externalcontact/del_contact_way"): _del_contact_way,
    ("GET", "/cgi-bin/externalcontact/get"): _get,
    ("GET", "/cgi-bin/externalcontact/list"): _list,
    ("POST", "/cgi-bin/externalcontact/batch/get_by_user"): _batch_get_by_user,
    ("POST", "/cgi-bin/externalcontact/remark"): _remark,
    ("POST", "/cgi-bin/externalcontact/mark_tag"): _mark_tag,
    ("POST", "/cgi-bin/externalcontact/send_welcome_msg"): _send_welcome_msg,
    ("POST", "/cgi-bin/externalcontact/transfer_customer"): _transfer("onjob"),
    ("POST", "/cgi-bin/externalcontact/transfer_result"): _transfer_result("onjob"),
    ("POST", "/cgi-bin/externalcontact/resigned/transfer_customer"): _transfer("resigned"),
    ("POST", "/cgi-bin/externalcontact/resigned/transfer_result"): _transfer_result("resigned"),
}


class FakeWecomServer:
    """The fake on a free loopback port, in a thread; `with FakeWecomServer() as fake:`."""

    def __init__(self):
        self.fake = FakeWecom()
        self._server = make_server("127.0.0.1", 0, self.fake, threaded=True)
        self.fake.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeWecom:
        self._thread.start()
        return self.fake

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join()


_shared: FakeWecomServer | None = None


def shared() -> FakeWecom:
    """The one fake of a test session, started on first use (every test app points at it,
    so no test can reach the real WeCom)."""
    global _shared
    if _shared is None:
        _shared = FakeWecomServer()
        _shared.__enter__()
    return _shared.fake
