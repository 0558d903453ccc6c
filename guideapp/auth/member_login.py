"""Members (consumers) sign in to member-facing pages with the mini-program: a wx.login code
that WeChat turns into their openid (code2Session) names the member, and the answer is a
short-lived member token for those pages (docs/wechat.md, "Member session").

Nobody is believed on their word: an openid, unionid or member id a client sends is never
read. Only the members WeChat identified before (a scan with a login code stored the
openid, `member_identities` kind "openid:<appid>") or whose unionid WeChat gives now are
found; anyone else is told they are not a member yet, and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from guideapp.auth.service import check_login_throttle
from guideapp.auth.tokens import issue_member_token, read_member_token
from guideapp.auth.wechat_login import _identity, _tenant
from guideapp.db import utcnow
from guideapp.errors import NotFound, Unauthorized
from guideapp.members.identity import resolve_member

HEADER = "X-Member-Token"


@dataclass(frozen=True)
class SignedInMember:
    """Who a member token says is calling: a member of one tenant."""

    tenant_id: str
    member_id: str


class NotAMember(NotFound):
    default_message = (
        "WeChat knows you, but you are not a member of this brand yet (not_a_member): scan "
        "one of its codes in the mini-program first."
    )


def start(session, *, appid: str, code: str, address: str, config) -> dict:
    """A wx.login code -> {member_token, expires_in, member_id}. The throttle and the
    counting of refused codes are the staff WeChat login's."""
    tenant_id = _tenant(session, appid)
    check_login_throttle(session, phone=None, address=address, config=config)
    identity = _identity(session, tenant_id, appid, code, address)
    member = resolve_member(
        session,
        tenant_id=tenant_id,
        unionid=identity.unionid,
        identities={identity.kind: identity.openid},
    )
    if member is None or member.state != "active":
        raise NotAMember(errors={"code": ["not_a_member"]})
    ttl = config["MEMBER_TOKEN_TTL_SECONDS"]
    token = issue_member_token(
        secret=config["SECRET_KEY"],
        member_id=member.id,
        tenant_id=tenant_id,
        now=utcnow(),
        ttl_seconds=ttl,
    )
    return {"member_token": token, "expires_in": ttl, "member_id": member.id}


def authenticate_member(token: str | None, *, config) -> SignedInMember:
    """The member a member-facing request comes from (web.py), else 401."""
    if not token:
        raise Unauthorized(
            f"Sign in first: send '{HEADER}: <member token>' from POST /api/v1/wechat/me/session."
        )
    claims = read_member_token(token.strip(), secret=config["SECRET_KEY"])
    if claims is None:
        raise Unauthorized(
            "The member token is invalid or expired: sign in again with a new wx.login code."
        )
    return SignedInMember(tenant_id=claims["tid"], member_id=claims["sub"])
