"""wechatpy clients built per tenant and per use, against configurable WeChat hosts.

What wechatpy already does is left to it: fetching and caching access tokens and jsapi
tickets in its session storage, refreshing the token on 40001/40014/42001 and retrying,
OAuth URLs and code exchange, jsapi signatures. What it does not, we add here, no more:
- its hosts are hard-wired (https://api.weixin.qq.com, https://open.weixin.qq.com); ours
  come from GUIDEAPP_WECHAT_API_BASE / GUIDEAPP_WECHAT_OAUTH_BASE (tests: a fake WeChat);
- its token retry recurses for as long as WeChat says "token invalid": we retry once;
- its HTTP calls have no timeout by default: ours have one;
- its errors become our 422 (the code is bad) and 503 (WeChat cannot answer now).
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterator

import requests
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from wechatpy import WeChatClient, WeChatOAuth
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage
from wechatpy.session.redisstorage import RedisStorage

from guideapp.db import commit, utcnow
from guideapp.errors import DomainError, InvalidInput
from guideapp.wechat.models import WechatCacheEntry
from guideapp.secretbox import SecretBox

log = logging.getLogger(__name__)

# https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Global_Return_Code.html
# and the error tables of code2Session, getPhoneNumber, oauth2/access_token.
CODE_REFUSED = {40029: "invalid", 40163: "already used", 41008: "missing", 40226: "refused"}
TRY_AGAIN = {-1, 45009, 45011}


class WechatUnavailable(DomainError):
    status = 503
    default_message = "WeChat is busy; try again in a moment."

    def __init__(self, message: str | None = None, **kwargs):
        super().__init__(message, headers={"Retry-After": "2"}, **kwargs)


class WechatCodeRefused(InvalidInput):
    default_message = "WeChat did not accept this code: get a new one and try again."


class WechatNotConfigured(DomainError):
    status = 404
    default_message = "This brand has not configured WeChat for that (wechat_not_configured)."


@dataclass
class WechatSettings:
    """What every WeChat call of an app shares; carried in session.info[SETTINGS_KEY]."""

    api_base: str
    oauth_base: str
    storage: SessionStorage
    box: SecretBox
    timeout: float = 5.0
    mp_code_page: str = "pages/scan/index"
    # A single-tenant deployment's apps from the environment (config.py: WECHAT_ENV).
    env: dict[str, Any] = field(default_factory=dict)


SETTINGS_KEY = "guideapp.wechat"


class DatabaseStorage(SessionStorage):
    """wechatpy session storage in our database, for deployments without Redis: every
    gunicorn worker sees the same token. Each write commits at once in a session of its
    own (the cache must outlive a request that rolls back)."""

    def __init__(self, sessionmaker):
        self._sessionmaker = sessionmaker

    def get(self, key, default=None):
        with self._sessionmaker() as session:
            entry = session.scalar(select(WechatCacheEntry).where(WechatCacheEntry.key == key))
        if entry is None or (entry.expires_at is not None and entry.expires_at <= utcnow()):
            return default
        return json.loads(entry.value)

    def set(self, key, value, ttl=None):
        if value is None:
            return
        expires_at = utcnow() + timedelta(seconds=ttl) if ttl else None
        with self._sessionmaker() as session:
            try:
                session.merge(
                    WechatCacheEntry(key=key, value=json.dumps(value), expires_at=expires_at)
                )
                commit(session)
            except IntegrityError:  # another worker stored the same key first: theirs stands
                session.rollback()

    def delete(self, key):
        with self._sessionmaker() as session:
            session.execute(delete(WechatCacheEntry).where(WechatCacheEntry.key == key))
            commit(session)


def make_storage(
    cache_url: str, sessionmaker, database_url: str, sqlite_url: str
) -> SessionStorage:
    """Redis when there is one (GUIDEAPP_WECHAT_CACHE_URL or GUIDEAPP_REDIS_URL); else the
    main database when it is PostgreSQL; else a SQLite file of its own (sqlite_url,
    instance/wechat-cache.db by default): on SQLite every transaction holds the one write
    lock, and a token stored during a request must not wait for that request's own lock."""
    if cache_url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        return RedisStorage(redis.Redis.from_url(cache_url), prefix="guideapp:wechat")
    if not cache_url and not database_url.startswith("sqlite"):
        return DatabaseStorage(sessionmaker)
    from sqlalchemy.orm import sessionmaker as make_sessionmaker

    from guideapp.db import make_engine

    engine = make_engine(cache_url or sqlite_url)
    WechatCacheEntry.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    return DatabaseStorage(make_sessionmaker(engine, expire_on_commit=False))


class TimeoutSession(requests.Session):
    """requests with a default timeout (wechatpy's calls have none unless told)."""

    def __init__(self, timeout: float):
        super().__init__()
        self._timeout = timeout

    def request(self, *args, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().request(*args, **kwargs)


class RetriesTokenOnce:
    """For a wechatpy client: a token error is retried once, not for as long as it lasts.

    wechatpy answers a token error by refreshing and calling _request again, which comes
    back to _handle_result: in that nested call a second token error is final."""

    _retrying = False

    def _handle_result(self, res, method=None, url=None, result_processor=None, **kwargs):
        retrying, auto_retry = self._retrying, self.auto_retry
        self._retrying = True
        if retrying:
            self.auto_retry = False
        try:
            return super()._handle_result(res, method, url, result_processor, **kwargs)
        finally:
            self._retrying, self.auto_retry = retrying, auto_retry


class AppClient(RetriesTokenOnce, WeChatClient):
    """A mini-program's or official account's client (the same API, another appid)."""

    def __init__(self, appid: str, secret: str, settings: WechatSettings):
        super().__init__(appid, secret, session=settings.storage, timeout=settings.timeout)
        self._http = TimeoutSession(settings.timeout)
        self._api_base = settings.api_base.rstrip("/")
        self.API_BASE_URL = f"{self._api_base}/cgi-bin/"
        self.wxa.API_BASE_URL = f"{self._api_base}/"  # wxa/..., sns/jscode2session

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=f"{self._api_base}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


class OAuthClient(WeChatOAuth):
    """H5 web authorisation (snsapi_base) of an official account."""

    def __init__(self, appid: str, secret: str, redirect_uri: str, settings: WechatSettings):
        super().__init__(appid, secret, redirect_uri, scope="snsapi_base")
        self._http = TimeoutSession(settings.timeout)
        self.API_BASE_URL = f"{settings.api_base.rstrip('/')}/"
        self.OAUTH_BASE_URL = f"{settings.oauth_base.rstrip('/')}/connect/"


@contextmanager
def answers(field: str, what: str) -> Iterator[None]:
    """WeChat's refusals as ours: a bad code is the caller's 422 on `field`; busy, rate
    limited, unreachable or refusing our credentials is a 503. Logged by errcode only:
    wechatpy's exceptions and requests' messages carry URLs with the app secret in them."""
    try:
        yield
    except WeChatClientException as error:
        errcode = error.errcode
        log.warning("wechat refused", extra={"wechat_call": what, "errcode": errcode})
        if errcode in CODE_REFUSED:
            raise WechatCodeRefused(
                f"WeChat did not accept this {field} ({CODE_REFUSED[errcode]}, errcode "
                f"{errcode}): codes work once and expire in minutes; get a new one.",
                errors={field: [f"WeChat errcode {errcode}: code {CODE_REFUSED[errcode]}."]},
            ) from None
        if errcode in TRY_AGAIN or errcode is None:
            raise WechatUnavailable(
                f"WeChat is busy or rate-limited (errcode {errcode}); try again in a moment."
            ) from None
        raise WechatUnavailable(
            f"WeChat refused this brand's app (errcode {errcode}): HQ should check the "
            "WeChat configuration (appid, secret, server IP allow-list)."
        ) from None
    except requests.RequestException as error:
        log.warning(
            "wechat unreachable", extra={"wechat_call": what, "error": type(error).__name__}
        )
        raise WechatUnavailable("WeChat cannot be reached right now; try again.") from None
