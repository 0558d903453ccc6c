"""TEST FAKE of the WeChat Pay v3 platform's side of a notification: it signs and encrypts
notifications as WeChat Pay does, from the public v3 documentation, with a key pair made
in the test (WeChat's own private key is, of course, not published).

- 回调通知 (notification): POST to the notify_url, JSON body {id, create_time,
  resource_type: "encrypt-resource", event_type, summary, resource: {original_type,
  algorithm: "AEAD_AES_256_GCM", ciphertext, associated_data, nonce}}.
- 证书和回调报文解密 (resource encryption): AES-256-GCM, the merchant's 32-character APIv3
  key as the key, a 12-character nonce, `associated_data` as AAD; `ciphertext` is
  base64(ciphertext || 16-byte tag).
- 签名验证 (signature): headers Wechatpay-Timestamp (Unix seconds), Wechatpay-Nonce,
  Wechatpay-Serial (the platform key id, PUB_KEY_ID_..., or the platform certificate's
  serial), Wechatpay-Signature = base64(SHA256withRSA("timestamp\\nnonce\\nbody\\n")),
  Wechatpay-Signature-Type: WECHATPAY2-SHA256-RSA2048.

The resources below are WeChat's published samples (the v3 docs' example values for a
payment and a refund notification); no published sample comes with its ciphertext and the
key to check it, so there is no official test vector to replay.

wechatpayv3 signs with its own `rsa_sign`; it only decrypts AES-GCM, so the encryption
uses `cryptography`'s AESGCM directly.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
import uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from wechatpayv3.utils import rsa_sign

# The v3 docs' sample transaction (JSAPI / mini-program payment notification, decrypted).
SAMPLE_TRANSACTION = {
    "transaction_id": "1217752501201407033233368018",
    "amount": {"payer_total": 100, "total": 100, "currency": "CNY", "payer_currency": "CNY"},
    "mchid": "1230000109",
    "trade_state": "SUCCESS",
    "bank_type": "CMC",
    "promotion_detail": [],
    "success_time": "2018-06-08T10:34:56+08:00",
    "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    "out_trade_no": "1217752501201407033233368018",
    "appid": "wxd678efh567hg6787",
    "trade_state_desc": "支付成功",
    "trade_type": "MICROPAY",
    "attach": "自定义数据",
    "scene_info": {"device_id": "013467007045764"},
}
# The v3 docs' sample refund notification (decrypted); mchid as the transaction's here.
SAMPLE_REFUND = {
    "mchid": "1230000109",
    "transaction_id": "1217752501201407033233368018",
    "out_trade_no": "1217752501201407033233368018",
    "refund_id": "50200207182018070300011301001",
    "out_refund_no": "7752501201407033233368018",
    "refund_status": "SUCCESS",
    "success_time": "2018-06-08T10:34:56+08:00",
    "user_received_account": "招商银行信用卡0403",
    "amount": {"total": 100, "refund": 100, "payer_total": 100, "payer_refund": 100},
}
SAMPLE_APIV3_KEY = (
    "a12d3924fd499edac8a5efc8a5e4b3c2"  # 32 characters, shaped like the docs' example
)
SAMPLE_PUBLIC_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"

_SUMMARY = {"TRANSACTION.SUCCESS": "支付成功", "REFUND.SUCCESS": "退款成功"}
_ORIGINAL_TYPE = {"TRANSACTION": "transaction", "REFUND": "refund"}


@lru_cache(maxsize=4)
def platform_private_key(name: str = "platform"):
    """One RSA-2048 key per name for the whole run (making one takes a while)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _random(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


class FakeWeChatPay:
    """One merchant's view of WeChat Pay: its APIv3 key and the platform key that signs."""

    def __init__(
        self,
        *,
        apiv3_key: str = SAMPLE_APIV3_KEY,
        serial: str = SAMPLE_PUBLIC_KEY_ID,
        key_name: str = "platform",
    ):
        self.apiv3_key = apiv3_key
        self.serial = serial
        self.private_key = platform_private_key(key_name)

    @property
    def public_key_pem(self) -> str:
        public = self.private_key.public_key()
        return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()

    def platform_key(self) -> dict:
        """The merchant's `platform_keys` entry HQ copies from the merchant console."""
        return {"serial": self.serial, "public_key": self.public_key_pem}

    def certificate_pem(self) -> tuple[str, str]:
        """A platform certificate for this key (the older mode): (PEM, serial in hex)."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
        now = datetime.now(timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .sign(self.private_key, hashes.SHA256())
        )
        return certificate.public_bytes(Encoding.PEM).decode(), format(
            certificate.serial_number, "X"
        )

    def encrypt(self, resource: dict, *, associated_data: str) -> dict:
        nonce = _random(12)
        plaintext = json.dumps(resource, ensure_ascii=False).encode()
        sealed = AESGCM(self.apiv3_key.encode()).encrypt(
            nonce.encode(), plaintext, associated_data.encode()
        )
        return {
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(sealed).decode(),
            "associated_data": associated_data,
            "nonce": nonce,
        }

    def body(self, event_type: str, resource: dict) -> bytes:
        original_type = _ORIGINAL_TYPE[event_type.split(".")[0]]
        envelope = {
            "id": str(uuid.uuid4()),
            "create_time": datetime.now(timezone(timedelta(hours=8))).isoformat(timespec="seconds"),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": _SUMMARY.get(event_type, ""),
            "resource": {
                "original_type": original_type,
                **self.encrypt(resource, associated_data=original_type),
            },
        }
        return json.dumps(envelope, ensure_ascii=False).encode()

    def sign(self, body: bytes, *, timestamp: int | None = None, nonce: str | None = None):
        """The headers WeChat Pay sends with `body`."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        nonce = nonce or _random(32)
        message = f"{timestamp}\n{nonce}\n{body.decode()}\n"
        return {
            "Content-Type": "application/json",
            "Wechatpay-Serial": self.serial,
            "Wechatpay-Signature": rsa_sign(self.private_key, message),
            "Wechatpay-Timestamp": str(timestamp),
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }

    def notification(self, event_type: str, resource: dict, **signing) -> tuple[dict, bytes]:
        body = self.body(event_type, resource)
        return self.sign(body, **signing), body
