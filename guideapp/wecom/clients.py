"""wechatpy's WeCom client per tenant and secret, against a configurable WeCom host.

wechatpy fetches and caches access tokens (in the same shared storage as the WeChat
tokens: every worker sees one token per secret) and refreshes them on 40001/40014/42001.
What it does not, we add here, no more:
- its host is hard-wired (https://qyapi.weixin.qq.com); ours is GUIDEAPP_WECOM_API_BASE
  (tests: the fake in tests/fake_wecom.py);
- its token retry recurses for as long as WeCom says "token invalid": we retry once;
- its HTTP calls have no timeout by default: ours have one;
- its errors become ours: WecomBusy (frequency limits, system busy, unreachable: worth a
  retry later) and WecomRefused (WeCom said no for a reason that stays: its errcode).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage
from wechatpy.work import WeChatClient

from guideapp.errors import DomainError
from guideapp.wechat.clients import RetriesTokenOnce, TimeoutSession
from guideapp.secretbox import SecretBox

log = logging.getLogger(__name__)

SETTINGS_KEY = "guideapp.wecom"

# https://developer.work.weixin.qq.com/document/path/90313 (全局错误码)
TRY_AGAIN = {-1, 45009, 45033, 45011, 45035}
# 40096 invalid external userid; 84061 not an external contact; 40098 / 60111 user not in the
# corp or not activated; 41051 / 40099? see handlers: each names what it means there.


class WecomUnavailable(DomainError):
    """WeCom cannot answer now (busy, rate-limited, unreachable): the work is retried."""

    status = 503
    default_message = "WeCom is busy; try again in a moment."

    def __init__(self, message: str | None = None, *, errcode: int | None = None, **kwargs):
        super().__init__(message, headers={"Retry-After": "2"}, **kwargs)
        self.errcode = errcode


class WecomRefused(DomainError):
    """WeCom refused the call for a reason that will not go away by itself."""

    status = 409
    default_message = "WeCom refused this."

    def __init__(self, message: str | None = None, *, errcode: int | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.errcode = errcode


class WecomNotConfigured(DomainError):
    status = 409
    default_message = "This brand has not configured WeCom yet (wecom_not_configured)."


@dataclass
class WecomSettings:
    """What every WeCom call shares; carried in session.info[SETTINGS_KEY] (create_app)."""

    api_base: str
    storage: SessionStorage
    box: SecretBox
    timeout: float = 5.0
    timestamp_window_s: int = 300  # callbacks older or newer than this are refused
    max_callback_bytes: int = 64 * 1024
    event_max_attempts: int = 8  # then the event is dead (inspect, replay)
    event_retry_s: float = 10.0  # doubled after each failed attempt, up to an hour
    welcome_window_s: float = 18.0  # WeCom's welcome_code lives 20 s; keep a margin
    # Transfers (transfers.py): WeCom takes over after 24 h or the customer's answer, so a
    # poll every half hour is plenty; a busy WeCom is asked again after transfer_retry_s,
    # doubled per attempt, and a customer it could not take after the last is failed.
    transfer_poll_s: float = 1800.0
    transfer_retry_s: float = 30.0
    transfer_max_attempts: int = 8


class WecomClient(RetriesTokenOnce, WeChatClient):
    """One secret's client: the customer-contact secret or the app's."""

    def __init__(self, corp_id: str, secret: str, settings: WecomSettings):
        super().__init__(corp_id, secret, session=settings.storage, timeout=settings.timeout)
        self._http = TimeoutSession(settings.timeout)
        self._api_base = settings.api_base.rstrip("/")
        self.API_BASE_URL = f"{self._api_base}/cgi-bin/"

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=f"{self._api_base}/cgi-bin/gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )

    def call(self, what: str, method: str, path: str, **kwargs) -> dict[str, Any]:
        """`path` under /cgi-bin/ (e.g. externalcontact/get), its errors as ours."""
        try:
            return getattr(self, method)(path, **kwargs)
        except WeChatClientException as error:
            raise _ours(what, error.errcode, error.errmsg) from None
        except requests.RequestException as error:
            log.warning(
                "wecom unreachable", extra={"wecom_call": what, "error": type(error).__name__}
            )
            raise WecomUnavailable("WeCom cannot be reached right now; try again.") from None


def _ours(what: str, errcode, errmsg) -> DomainError:
    """Logged by errcode only: wechatpy's messages carry URLs with the access token."""
    log.warning("wecom refused", extra={"wecom_call": what, "errcode": errcode})
    if errcode in TRY_AGAIN or errcode is None:
        return WecomUnavailable(
            f"WeCom is busy or rate-limited (errcode {errcode}); trying again later.",
            errcode=errcode,
        )
    reason = str(errmsg or "").split(",")[0].split(" rid:")[0][:120]
    return WecomRefused(f"WeCom refused {what} (errcode {errcode}: {reason}).", errcode=errcode)
