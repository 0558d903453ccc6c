"""WeCom's callbacks in: checked, decrypted, stored, answered — nothing else.

https://developer.work.weixin.qq.com/document/path/90930 (接收消息与事件, 加解密方案).
Every callback carries msg_signature = sha1(sorted(token, timestamp, nonce, Encrypt)) in
its query and the message AES-encrypted with the EncodingAESKey, the receiving corp id
inside. Here, in this order, each refusal writing nothing:
- the tenant's corp must have its callback configured (404, as for any unknown URL);
- the timestamp within the window (401): a replayed old message is refused;
- the signature, compared in constant time (401) — wechatpy compares with `!=`, so we
  check it first and use wechatpy only to decrypt;
- the outer <ToUserName> and the receiveid inside the ciphertext are our corp (403);
- the body decrypts and the message is XML (400).
Then the event is stored under a digest of its own fields (a WeCom retry is the same
message: stored once) and answered `success` without calling WeCom: events.py processes
it from the table. The echostr of URL verification is decrypted the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Mapping
from xml.parsers.expat import ExpatError

import xmltodict
from sqlalchemy import select
from sqlalchemy.orm import Session
from wechatpy.exceptions import WeChatException
from wechatpy.work.crypto import PrpCrypto
from wechatpy.work.exceptions import InvalidCorpIdException

from guideapp import untrusted
from guideapp.db import new_id, upsert, utcnow
from guideapp.errors import DomainError, NotFound
from guideapp.org.models import Tenant
from guideapp.wecom.events import wake
from guideapp.wecom.models import WecomConfig, WecomEvent
from guideapp.wecom.service import callback_keys, settings_of


class CallbackRefused(DomainError):
    status = 401
    default_message = "This is not a WeCom callback we can accept."


class ForeignCallback(CallbackRefused):
    status = 403


class UnreadableCallback(CallbackRefused):
    status = 400


def _keys(session: Session, slug: str) -> tuple[str, str, str, str]:
    """(tenant id, corp id, token, EncodingAESKey) of the callback URL `slug`."""
    row = session.execute(
        select(WecomConfig)
        .join(Tenant, Tenant.id == WecomConfig.tenant_id)
        .where(Tenant.slug == slug)
    ).scalar_one_or_none()
    keys = callback_keys(session, row) if row is not None else None
    if keys is None:
        raise NotFound("No WeCom callback is configured at this URL.")
    return (row.tenant_id, *keys)  # type: ignore[union-attr]


def _signed(token: str, args: Mapping[str, str], encrypted: str, window_s: int) -> None:
    timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
    signature = args.get("msg_signature", "")
    if not (timestamp.isdigit() and len(timestamp) <= 12) or not nonce or not signature:
        raise CallbackRefused("msg_signature, timestamp and nonce are required.")
    if abs(time.time() - int(timestamp)) > window_s:
        raise CallbackRefused(f"The timestamp is more than {window_s} s from now.")
    expected = hashlib.sha1(
        "".join(sorted([token, timestamp, nonce, encrypted])).encode()
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise CallbackRefused("The signature does not match.")


def _open(aes_key: str, corp_id: str, encrypted: str) -> str:
    try:
        key = base64.b64decode(aes_key + "=")
        return PrpCrypto(key).decrypt(encrypted, corp_id)
    except InvalidCorpIdException:
        raise ForeignCallback("This message is for another corp.") from None
    except (WeChatException, ValueError, binascii.Error, UnicodeError, IndexError):
        raise UnreadableCallback("The message cannot be decrypted with this corp's key.") from None


def verify_url(session: Session, *, slug: str, args: Mapping[str, str]) -> str:
    """URL verification (HQ saves the callback URL in the WeCom console): the echostr
    decrypted, which WeCom expects back as the plain body."""
    _, corp_id, token, aes_key = _keys(session, slug)
    echostr = args.get("echostr", "")
    if not echostr:
        raise CallbackRefused("echostr is required.")
    _signed(token, args, echostr, settings_of(session).timestamp_window_s)
    return _open(aes_key, corp_id, echostr)


def _xml(text: str | bytes, what: str) -> dict[str, Any]:
    try:
        parsed = xmltodict.parse(text, disable_entities=True)
    except (ExpatError, ValueError, UnicodeError):
        raise UnreadableCallback(f"The {what} is not XML.") from None
    message = parsed.get("xml") if isinstance(parsed, dict) else None
    if not isinstance(message, dict):
        raise UnreadableCallback(f"The {what} is not a WeCom <xml> message.")
    try:
        untrusted.check(message, max_depth=8)
    except (untrusted.UnsafeText, ValueError):
        raise UnreadableCallback(f"The {what} holds text we cannot keep.") from None
    return message


def event_key(fields: Mapping[str, Any]) -> str:
    """A digest of everything WeCom said: a retry is the same message, so the same key;
    two customers adding a guide in one second differ (ExternalUserID, WelcomeCode)."""
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def receive(
    session: Session, *, slug: str, args: Mapping[str, str], body: bytes
) -> tuple[str, bool]:
    """Store one callback; (event id, whether it is new). A retry changes nothing."""
    tenant_id, corp_id, token, aes_key = _keys(session, slug)
    settings = settings_of(session)
    envelope = _xml(body, "body")
    encrypted = envelope.get("Encrypt")
    if not isinstance(encrypted, str) or not encrypted:
        raise UnreadableCallback("The body has no <Encrypt>.")
    _signed(token, args, encrypted, settings.timestamp_window_s)
    if envelope.get("ToUserName") not in (None, corp_id):
        raise ForeignCallback("This message is for another corp.")
    fields = _xml(_open(aes_key, corp_id, encrypted), "message")
    if fields.get("ToUserName") not in (None, corp_id):
        raise ForeignCallback("This message is for another corp.")
    event = str(fields.get("Event") or fields.get("MsgType") or "")[:64]
    change = fields.get("ChangeType")
    key = event_key(fields)
    now = utcnow()
    stored = session.execute(
        upsert(session, WecomEvent)
        .values(
            id=new_id(),
            tenant_id=tenant_id,
            key=key,
            event=event,
            change_type=str(change)[:64] if change else None,
            fields=fields,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            received_at=now,
        )
        .on_conflict_do_nothing()
        .returning(WecomEvent.id)
    ).scalar()
    if stored is None:  # WeCom's retry of a message already stored
        existing = session.scalar(
            select(WecomEvent.id).where(WecomEvent.tenant_id == tenant_id, WecomEvent.key == key)
        )
        return str(existing), False
    wake(session, tenant_id)
    return stored, True
