"""A tenant's WeChat apps (HQ sets them; secrets write-only) and what WeChat vouches for:
openids from OAuth and wx.login codes, phones from phone-number codes, JS-SDK signatures.

Every call goes through guideapp/wechat/clients.py (wechatpy, shared token cache, errors).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from wechatpy.exceptions import WeChatClientException
from wechatpy.utils import random_string

from guideapp import policy
from guideapp.config import WECHAT_ENV_FIELDS
from guideapp.db import utcnow
from guideapp.errors import Conflict, InvalidInput, InvalidState
from guideapp.org.models import Tenant
from guideapp.phones import normalize_phone
from guideapp.wechat.clients import (
    SETTINGS_KEY,
    AppClient,
    OAuthClient,
    WechatNotConfigured,
    WechatSettings,
    WechatUnavailable,
    answers,
)
from guideapp import storage
from guideapp.wechat.models import MiniProgramCode, WechatConfig

SECRET_FIELDS = ("mp_secret", "oa_secret")
PLAIN_FIELDS = tuple(f for f in WECHAT_ENV_FIELDS if f not in SECRET_FIELDS)
APPS = {"mp": "mini-program", "oa": "official account"}


def settings_of(session: Session) -> WechatSettings:
    """The app's WeChat settings, carried by every session it makes (create_app)."""
    return session.info[SETTINGS_KEY]


# --- configuration --------------------------------------------------------------------


def _row(session: Session, tenant_id: str) -> WechatConfig | None:
    return session.scalar(select(WechatConfig).where(WechatConfig.tenant_id == tenant_id))


def _env_for(session: Session, settings: WechatSettings, tenant_id: str) -> dict[str, Any]:
    env = settings.env
    if not env:
        return {}
    slug = session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id))
    return {k: v for k, v in env.items() if k != "tenant"} if slug == env["tenant"] else {}


def _plain(settings: WechatSettings, row: WechatConfig | None, env: dict, name: str):
    """A field's effective value: what HQ stored, else the environment's (decrypted)."""
    stored = getattr(row, name) if row is not None else None
    if stored is not None:
        return settings.box.open(stored) if name in SECRET_FIELDS else stored
    return env.get(name)


def credentials(session: Session, tenant_id: str, app: str) -> tuple[str, str] | None:
    """(appid, secret) of the tenant's mini-program ("mp") or official account ("oa")."""
    settings = settings_of(session)
    row, env = _row(session, tenant_id), _env_for(session, settings, tenant_id)
    appid = _plain(settings, row, env, f"{app}_appid")
    if not appid:
        return None
    secret = _plain(settings, row, env, f"{app}_secret")
    return (appid, secret) if secret else None


def get_config(session: Session, *, actor) -> dict:
    policy.require(actor, "configure_wechat")
    return _present(session, actor.tenant_id)


def put_config(session: Session, *, actor, data: dict) -> dict:
    """Set the fields sent (null clears one); secrets left out are kept, since nobody can
    read them back to send them again."""
    policy.require(actor, "configure_wechat")
    if data.get("mp_appid") and session.scalar(
        select(WechatConfig.id).where(
            WechatConfig.mp_appid == data["mp_appid"], WechatConfig.tenant_id != actor.tenant_id
        )
    ):
        # The appid names the brand a staff login is for: one mini-program, one brand.
        raise Conflict(
            "Another brand already uses this mini-program with guideapp.",
            errors={"mp_appid": ["Already configured for another brand."]},
        )
    settings = settings_of(session)
    row = _row(session, actor.tenant_id)
    if row is None:
        row = WechatConfig(tenant_id=actor.tenant_id)
        session.add(row)
    for name, value in data.items():
        if name in SECRET_FIELDS and value is not None:
            value = settings.box.seal(value)
        setattr(row, name, value)
    row.updated_by, row.updated_at = actor.staff_id, utcnow()
    session.flush()
    return _present(session, actor.tenant_id)


def _present(session: Session, tenant_id: str) -> dict:
    settings = settings_of(session)
    row, env = _row(session, tenant_id), _env_for(session, settings, tenant_id)

    def stored(name):
        return getattr(row, name) if row is not None else None

    answer: dict[str, Any] = {}
    for name in PLAIN_FIELDS:
        answer[name] = stored(name) if stored(name) is not None else env.get(name)
    for name in SECRET_FIELDS:
        answer[f"{name}_set"] = stored(name) is not None or bool(env.get(name))
    answer["mp_code_page"] = stored("mp_code_page") or settings.mp_code_page
    answer["mini_program_ready"] = bool(answer["mp_appid"] and answer["mp_secret_set"])
    answer["official_account_ready"] = bool(answer["oa_appid"] and answer["oa_secret_set"])
    answer["from_environment"] = sorted(
        name for name in WECHAT_ENV_FIELDS if stored(name) is None and env.get(name)
    )
    answer["updated_at"] = row.updated_at if row is not None else None
    answer["secrets_key_set"] = settings.box.available
    return answer


# --- identities WeChat vouches for ------------------------------------------------------


@dataclass(frozen=True)
class WechatIdentity:
    """An openid in one app's namespace (member_identities kind "openid:<appid>")."""

    appid: str
    openid: str
    unionid: str | None

    @property
    def kind(self) -> str:
        return f"openid:{self.appid}"


def _needs(session: Session, tenant_id: str, app: str, field: str) -> tuple[str, str]:
    found = credentials(session, tenant_id, app)
    if found is None:
        raise InvalidInput(
            f"This brand has no {APPS[app]} configured with guideapp, so a {field} cannot "
            "be checked; send the scan without it.",
            errors={field: [f"No {APPS[app]} configured (wechat_not_configured)."]},
        )
    return found


def tenant_of_mini_program(session: Session, appid: str) -> str | None:
    """The tenant whose mini-program `appid` is (HQ's configuration, else the single-tenant
    environment's), or None. put_config keeps an appid to one brand."""
    found = session.scalar(select(WechatConfig.tenant_id).where(WechatConfig.mp_appid == appid))
    if found is not None:
        return found
    env = settings_of(session).env
    if not env or env.get("mp_appid") != appid:
        return None
    tenant_id = session.scalar(select(Tenant.id).where(Tenant.slug == env["tenant"]))
    if tenant_id is None or (_row(session, tenant_id) or WechatConfig()).mp_appid:
        return None  # HQ stored another appid: the environment's does not apply
    return tenant_id


def identity_from_oauth_code(session: Session, tenant_id: str, code: str) -> WechatIdentity | None:
    """An H5 snsapi_base code -> the official-account openid (and unionid when WeChat gives
    one). None for a "snapshot" user (the page seen in Moments' preview): WeChat gives a
    virtual openid there, which identifies nobody."""
    appid, secret = _needs(session, tenant_id, "oa", "oauth_code")
    oauth = OAuthClient(appid, secret, "", settings_of(session))
    with answers("oauth_code", "sns/oauth2/access_token"):
        result = oauth.fetch_access_token(code)
    if result.get("is_snapshotuser") == 1:
        return None
    return WechatIdentity(appid, result["openid"], result.get("unionid") or None)


def identity_from_login_code(
    session: Session, tenant_id: str, code: str, *, field: str = "login_code"
) -> WechatIdentity:
    """A mini-program wx.login code -> openid (and unionid) via code2Session."""
    appid, secret = _needs(session, tenant_id, "mp", field)
    client = AppClient(appid, secret, settings_of(session))
    with answers(field, "sns/jscode2session"):
        result = client.wxa.code_to_session(code)
    return WechatIdentity(appid, result["openid"], result.get("unionid") or None)


def phone_from_code(
    session: Session, tenant_id: str, code: str, *, field: str = "phone_code"
) -> str:
    """A mini-program getPhoneNumber code -> the phone WeChat verified (normalised)."""
    appid, secret = _needs(session, tenant_id, "mp", field)
    client = AppClient(appid, secret, settings_of(session))
    with answers(field, "wxa/business/getuserphonenumber"):
        info = client.wxa.get_phone_number(code)["phone_info"]
    phone = normalize_phone(info.get("purePhoneNumber") or "")
    if str(info.get("countryCode")) != "86" or phone is None:
        raise InvalidInput(
            "Only mainland China mobile numbers can be members.",
            errors={field: ["WeChat's number is not a mainland mobile (+86)."]},
        )
    return phone


# --- the landing page inside WeChat ------------------------------------------------------


def jssdk_config(session: Session, tenant_id: str, url: str, *, pages_base: str) -> dict:
    """wx.config's {appId, timestamp, nonceStr, signature} for `url`, signed with the
    tenant's official-account jsapi_ticket (wechatpy caches it in the shared storage).
    Only pages under `pages_base` (the landing pages' public address) are signed: we are
    nobody's signing oracle."""
    settings = settings_of(session)
    url = url.split("#", 1)[0]  # WeChat signs the URL without its fragment
    if not _under(url, pages_base):
        raise InvalidInput(
            "Only guideapp's own landing pages are signed.",
            errors={"url": [f"Must start with {pages_base}"]},
        )
    found = credentials(session, tenant_id, "oa")
    if found is None:
        raise WechatNotConfigured(
            "This brand has no official account configured (wechat_not_configured): "
            "use the browser's geolocation instead."
        )
    client = AppClient(*found, settings)
    nonce, timestamp = random_string(16), int(time.time())
    with answers("url", "cgi-bin/ticket/getticket"):
        ticket = client.jsapi.get_jsapi_ticket()
    return {
        "appId": found[0],
        "timestamp": timestamp,
        "nonceStr": nonce,
        "signature": client.jsapi.get_jsapi_signature(nonce, ticket, timestamp, url),
    }


def _under(url: str, base: str) -> bool:
    parts, root = urlsplit(url), urlsplit(base)
    return (
        parts.scheme == root.scheme
        and parts.netloc == root.netloc
        and parts.path.startswith(root.path)
        and not re.search(r"[\s\\]", url)
    )


def oauth_authorize_url(
    session: Session, tenant_id: str, redirect_uri: str, state: str
) -> str | None:
    """Where the landing page sends a WeChat browser for a snsapi_base code (None: the
    tenant has no official account, so the page stays anonymous)."""
    found = credentials(session, tenant_id, "oa")
    if found is None:
        return None
    oauth = OAuthClient(found[0], found[1], redirect_uri, settings_of(session))
    oauth.state = state
    return oauth.authorize_url


# --- mini-program codes ---------------------------------------------------------------------

# What getwxacodeunlimit takes as a scene: at most 32 of these characters.
SCENE = re.compile(r"^[0-9A-Za-z!#$&'()*+,/:;=?@._~-]{1,32}$")
# Its refusals that are the brand's to fix, not a moment's wait.
# https://developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/qrcode-link/qr-code/getUnlimitedQRCode.html
PAGE_REFUSED = {41030: "the page does not exist in the released mini-program"}
SCENE_REFUSED = {40129: "invalid scene", 40169: "invalid scene length"}
PNG = b"\x89PNG\r\n\x1a\n"


class MiniProgramCodeUnavailable(InvalidState):
    """409: the brand's mini-program setup (not the request) stops the code being made."""


def mini_program_code(session: Session, tenant_id: str, scene: str) -> tuple[bytes, str]:
    """(image bytes, mimetype) of the tenant's mini-program code for `scene`, opening its
    configured page. WeChat is asked once per (appid, scene, page); the image is kept in
    storage and a row remembers it, so a new page or scene makes a new one."""
    settings = settings_of(session)
    found = credentials(session, tenant_id, "mp")
    if found is None:
        raise MiniProgramCodeUnavailable(
            "This brand has no mini-program configured (wechat_not_configured): HQ sets "
            "mp_appid and mp_secret in PUT /api/v1/wechat/config; the QR image "
            "(qr.png) works without."
        )
    if not SCENE.match(scene):
        raise MiniProgramCodeUnavailable(
            "This code cannot go into a mini-program code: WeChat takes at most 32 letters, "
            "digits or !#$&'()*+,/:;=?@-._~ as its scene; use the QR image (qr.png)."
        )
    appid = found[0]
    row = _row(session, tenant_id)
    page = (row.mp_code_page if row is not None else None) or settings.mp_code_page
    kept = session.scalar(
        select(MiniProgramCode).where(
            MiniProgramCode.tenant_id == tenant_id,
            MiniProgramCode.appid == appid,
            MiniProgramCode.scene == scene,
            MiniProgramCode.page == page,
        )
    )
    files = storage.of(session)
    if kept is not None:
        try:
            return files.read(kept.storage_key), kept.mimetype
        except FileNotFoundError:  # storage lost it: ask WeChat again, below
            pass
    # WeChat first, the row after: nothing is written (no lock held) while WeChat answers.
    image = _fetch_code(session, found, scene, page)
    mimetype = "image/png" if image.startswith(PNG) else "image/jpeg"
    stored = files.save(image, suffix=".png" if mimetype == "image/png" else ".jpg")
    if kept is not None:
        kept.storage_key, kept.mimetype = stored.key, mimetype
        return image, mimetype
    try:
        with session.begin_nested():  # two first requests at once: the first row stands
            session.add(
                MiniProgramCode(
                    tenant_id=tenant_id,
                    appid=appid,
                    scene=scene,
                    page=page,
                    storage_key=stored.key,
                    mimetype=mimetype,
                )
            )
    except IntegrityError:
        pass
    return image, mimetype


def _fetch_code(session: Session, found: tuple[str, str], scene: str, page: str) -> bytes:
    client = AppClient(*found, settings_of(session))
    with answers("scene", "wxa/getwxacodeunlimit"):
        try:
            # is_hyaline: a transparent background, which WeChat sends as PNG.
            answer = client.wxa.get_wxa_code_unlimited(scene, page=page, is_hyaline=True)
        except WeChatClientException as error:
            if error.errcode in PAGE_REFUSED:
                raise MiniProgramCodeUnavailable(
                    f"WeChat refused the page {page!r} (errcode {error.errcode}: "
                    f"{PAGE_REFUSED[error.errcode]}): HQ sets mp_code_page in "
                    "PUT /api/v1/wechat/config to a page of the released mini-program."
                ) from None
            if error.errcode in SCENE_REFUSED:
                raise MiniProgramCodeUnavailable(
                    f"WeChat refused this code as a scene (errcode {error.errcode}: "
                    f"{SCENE_REFUSED[error.errcode]}); use the QR image (qr.png)."
                ) from None
            raise
    image = getattr(answer, "content", b"")  # wechatpy hands back the response: not JSON
    if not image.startswith((PNG, b"\xff\xd8\xff")):
        raise WechatUnavailable("WeChat answered something that is not an image; try again.")
    return image
