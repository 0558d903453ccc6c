"""Secrets at rest (a WeChat Pay APIv3 key...): sealed with Fernet, opened only where used.

Keys come from configuration: `GUIDEAPP_SECRETBOX_KEYS`, comma-separated Fernet keys (the
first seals, every one opens: add a new key in front to rotate, drop the old one once the
secrets were sealed again). Unset, one key is derived from `GUIDEAPP_SECRET_KEY` with HKDF,
which suits the demo; production sets its own keys.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SealedSecretUnreadable(Exception):
    """A sealed value none of the configured keys opens (keys rotated away, or tampered)."""


def derived_key(secret: str) -> bytes:
    """A Fernet key from the app's secret, for deployments that set no box keys."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"guideapp-secretbox").derive(
        secret.encode()
    )
    return base64.urlsafe_b64encode(raw)


class SecretBox:
    def __init__(self, keys: list[bytes]):
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @classmethod
    def from_config(cls, config) -> "SecretBox":
        listed = [k.strip() for k in (config.get("SECRETBOX_KEYS") or "").split(",") if k.strip()]
        return cls([k.encode() for k in listed] or [derived_key(config["SECRET_KEY"])])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as error:
            raise SealedSecretUnreadable() from error

    def __repr__(self) -> str:  # never show key material
        return "SecretBox(...)"
