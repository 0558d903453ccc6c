"""Secrets at rest: Fernet (cryptography) with GUIDEAPP_WECHAT_SECRETS_KEY.

The key is its own setting, not derived from SECRET_KEY: the demo ships a public default
SECRET_KEY, and a key that signs tokens should not also unlock stored app secrets. Several
comma-separated keys rotate (MultiFernet: the first encrypts, all decrypt). No key: nothing
secret can be stored (503), and a malformed key stops the app at start (create_app).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from guideapp.errors import DomainError


class SecretsKeyMissing(DomainError):
    status = 503
    default_message = (
        "WeChat secrets cannot be stored or read: this server has no "
        "GUIDEAPP_WECHAT_SECRETS_KEY (ask the operator to set one)."
    )


class SecretBox:
    def __init__(self, keys: str | None):
        """keys: comma-separated Fernet keys; ValueError when one is malformed."""
        parts = [k.strip() for k in (keys or "").split(",") if k.strip()]
        self._fernet = MultiFernet([Fernet(k) for k in parts]) if parts else None

    @property
    def available(self) -> bool:
        return self._fernet is not None

    def seal(self, plain: str) -> bytes:
        if self._fernet is None:
            raise SecretsKeyMissing()
        return self._fernet.encrypt(plain.encode())

    def open(self, sealed: bytes) -> str:
        if self._fernet is None:
            raise SecretsKeyMissing()
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken:
            raise SecretsKeyMissing(
                "A stored WeChat secret cannot be decrypted with this server's "
                "GUIDEAPP_WECHAT_SECRETS_KEY (was the key changed?): HQ must enter it again."
            ) from None
