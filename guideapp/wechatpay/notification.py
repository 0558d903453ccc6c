"""Opening a WeChat Pay v3 notification: headers, timestamp window, platform signature,
AEAD_AES_256_GCM resource. Every refusal is a `NotificationRefused` naming why.

The signature check and the decryption are wechatpayv3's own (`wechatpayv3.utils`
`rsa_verify` over "timestamp\\nnonce\\nbody\\n", `aes_decrypt` with the APIv3 key). We call
those pieces rather than `wechatpayv3.core.Core.callback` because Core holds one platform
key, downloads certificates from api.mch.weixin.qq.com when a serial is unknown (a network
call inside our request), and answers None for every failure alike; here the serial picks
one of the merchant's keys (several are valid while WeChat rotates them), nothing reaches
the network, and a refusal says what was wrong. The timestamp window is ours: the library
does not check it.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

from wechatpayv3.utils import aes_decrypt, load_public_key, rsa_verify

from guideapp import untrusted
from guideapp.errors import DomainError, InvalidInput

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
HEADERS = ("Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial")


class NotificationRefused(DomainError):
    """A notification we do not accept; WeChat is told FAIL and retries (routes.py)."""

    status = 400
    default_message = "This is not a WeChat Pay notification we can accept."


class NotAuthentic(NotificationRefused):
    status = 401


class ForeignNotification(NotificationRefused):
    status = 403


@dataclass(frozen=True)
class MerchantKeys:
    """What opening and recording one merchant's notifications needs (a row or the env)."""

    merchant_id: str
    tenant_id: str
    mchid: str
    appids: frozenset[str]
    apiv3_key: str
    platform_keys: Mapping[str, str]  # serial_key(serial) -> public key PEM
    store_id: str | None

    def __repr__(self) -> str:  # the APIv3 key never reaches a log line or a traceback
        return f"MerchantKeys(merchant_id={self.merchant_id!r}, mchid={self.mchid!r})"


def serial_key(serial: str) -> str:
    """Serials compare as WeChat's SDKs compare them: certificate serials are hex numbers
    (case and leading zeros do not matter); public key ids (PUB_KEY_ID_...) are names."""
    upper = serial.strip().upper()
    try:
        return format(int(upper, 16), "X")
    except ValueError:
        return upper


@lru_cache(maxsize=256)
def _public_key(pem: str):
    return load_public_key(pem)


def read_body(body: bytes, *, max_depth: int) -> tuple[str, dict]:
    """(text, parsed) of a body from outside, refused as any body is (guideapp.untrusted)
    before anything looks up a merchant: not UTF-8 or JSON 400, too deep 400, NUL or lone
    surrogates 422 naming where."""
    try:
        text = body.decode("utf-8")
        value = untrusted.loads(text, max_depth=max_depth)
    except UnicodeDecodeError:
        raise NotificationRefused("The body is not UTF-8 text.") from None
    except untrusted.UnsafeText as problem:
        raise InvalidInput(errors=problem.errors()) from None
    except untrusted.TooDeep as problem:
        raise NotificationRefused(problem.msg) from None
    except json.JSONDecodeError:
        raise NotificationRefused("The body is not JSON.") from None
    if not isinstance(value, dict):
        raise NotificationRefused("The body is not a JSON object.")
    return text, value


def open_notification(
    keys: MerchantKeys,
    headers: Mapping[str, str],
    text: str,
    envelope: dict,
    *,
    now: float,
    window_s: int,
) -> dict:
    """The verified notification (`text` as received, `envelope` its parse) with its
    resource decrypted: {id, event_type, resource: {...}}."""
    sent = {name: headers.get(name) or "" for name in HEADERS}
    missing = [name for name, value in sent.items() if not value]
    if missing:
        raise NotAuthentic(f"Missing header(s): {', '.join(missing)}.")
    signature_type = headers.get("Wechatpay-Signature-Type") or SIGNATURE_TYPE
    if signature_type != SIGNATURE_TYPE:
        raise NotAuthentic(f"Signature type must be {SIGNATURE_TYPE}.")
    timestamp = sent["Wechatpay-Timestamp"]
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise NotAuthentic("Wechatpay-Timestamp must be Unix seconds.")
    if abs(now - int(timestamp)) > window_s:
        raise NotAuthentic(
            f"Wechatpay-Timestamp is more than {window_s} s from our clock: refused as a replay."
        )
    pem = keys.platform_keys.get(serial_key(sent["Wechatpay-Serial"]))
    if pem is None:
        raise NotAuthentic(
            "Wechatpay-Serial names no platform key of this merchant: add it in the"
            " merchant's platform_keys."
        )
    if not rsa_verify(
        timestamp, sent["Wechatpay-Nonce"], text, sent["Wechatpay-Signature"], _public_key(pem)
    ):
        raise NotAuthentic("The Wechatpay-Signature does not verify with the named key.")
    resource = envelope.get("resource")
    if envelope.get("resource_type") != "encrypt-resource" or not isinstance(resource, dict):
        raise NotificationRefused("The body carries no encrypted resource.")
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise NotificationRefused("The resource must be encrypted with AEAD_AES_256_GCM.")
    parts = [resource.get(name) for name in ("nonce", "ciphertext")]
    associated = resource.get("associated_data") or ""
    if not all(isinstance(p, str) and p for p in parts) or not isinstance(associated, str):
        raise NotificationRefused("The resource needs nonce and ciphertext text.")
    try:
        plaintext = aes_decrypt(
            nonce=parts[0],
            ciphertext=parts[1],
            associated_data=associated,
            apiv3_key=keys.apiv3_key,
        )
    except (ValueError, binascii.Error):  # a nonce or key of the wrong size, broken base64
        plaintext = None
    if plaintext is None:
        raise NotificationRefused("The resource does not decrypt with this merchant's APIv3 key.")
    event_type = envelope.get("event_type")
    return {
        "id": str(envelope.get("id") or ""),
        "event_type": event_type if isinstance(event_type, str) else "",
        "resource": _json_object(plaintext, "The decrypted resource"),
    }


def _json_object(text: str, what: str) -> dict:
    try:
        value = untrusted.loads(text)
    except (json.JSONDecodeError, untrusted.UnsafeText):
        raise NotificationRefused(f"{what} is not clean JSON.") from None
    if not isinstance(value, dict):
        raise NotificationRefused(f"{what} is not a JSON object.")
    return value
