"""Secrets at rest (WeChat app secrets, WeChat Pay APIv3 keys): sealed with Fernet, opened
only where used. One box per app (create_app), shared by every domain that stores secrets.

The key is its own setting, `GUIDEAPP_WECHAT_SECRETS_KEY` (comma-separated Fernet keys: the
first seals, every one opens, so a new key in front rotates), never derived from
SECRET_KEY: the demo ships a public SECRET_KEY, and what signs tokens should not also unlock
stored secrets. No key: nothing secret can be stored or read (503); a malformed key stops
the app at start (create_app).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from guideapp.errors import DomainError


class SecretsKeyMissing(DomainError):
    status = 503
    default_message = (
        "Secrets cannot be stored or read: this server has no GUIDEAPP_WECHAT_SECRETS_KEY "
        "(ask the operator to set one)."
    )


class SecretBox:
    def __init__(self, keys: str | None):
        """keys: comma-separated Fernet keys; ValueError when one is malformed."""
        parts = [k.strip() for k in (keys or "").split(",") if k.strip()]
        self._fernet = MultiFernet([Fernet(k) for k in parts]) if parts else None

    @classmethod
    def from_config(cls, config) -> "SecretBox":
        return cls(config.get("WECHAT_SECRETS_KEY"))

    @property
    def available(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str) -> str:
        if self._fernet is None:
            raise SecretsKeyMissing()
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        if self._fernet is None:
            raise SecretsKeyMissing()
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise SecretsKeyMissing(
                "A stored secret cannot be decrypted with this server's "
                "GUIDEAPP_WECHAT_SECRETS_KEY (was the key changed?): HQ must enter it again."
            ) from None

    def __repr__(self) -> str:  # never show key material
        return "SecretBox(...)"
