"""Short-lived signed access tokens (PyJWT) and opaque refresh tokens stored hashed."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import datetime, timedelta

import jwt
from cachetools import LRUCache

from guideapp.untrusted import text_problem

ALGORITHM = "HS256"


def issue_access_token(
    *, secret: str, staff_id: str, tenant_id: str, session_id: str, now: datetime, ttl_seconds: int
) -> str:
    claims = {
        "sub": staff_id,
        "tid": tenant_id,
        "sid": session_id,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


# A phone sends the same token for up to its 15 minutes: verify its signature once per
# worker and keep the claims (expiry is still checked on every use). Failures are not kept.
_verified: LRUCache = LRUCache(maxsize=20_000)
_verified_lock = threading.Lock()


def read_access_token(token: str, *, secret: str) -> dict | None:
    """Claims of a valid, unexpired access token, else None."""
    key = (secret, token)
    with _verified_lock:
        claims = _verified.get(key)
    if claims is None:
        claims = _decode(token, secret)
        if claims is None:
            return None
        with _verified_lock:
            _verified[key] = claims
    return claims if claims["exp"] > time.time() else None


def _decode(token: str, secret: str) -> dict | None:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "sid"]}
        )
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != "access" or not _well_formed(claims):
        return None
    return claims


def _well_formed(claims: dict) -> bool:
    """Claims that are safe to use: a numeric expiry (PyJWT lets a numeric string through),
    ids that are short clean strings (they go into SQL parameters)."""
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return False
    for name in ("sub", "sid", "tid"):
        value = claims.get(name)
        if name == "tid" and value is None:
            continue
        if not isinstance(value, str) or not 0 < len(value) <= 64 or text_problem(value):
            return False
    return True


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- member sessions (member-facing pages: the wallet) -----------------------------------


def issue_member_token(
    *, secret: str, member_id: str, tenant_id: str, now: datetime, ttl_seconds: int
) -> str:
    """A member's session, after WeChat vouched for them (member_login.py). `typ` keeps it
    from ever passing as a staff token, and a staff token from passing as this."""
    claims = {
        "sub": member_id,
        "tid": tenant_id,
        "typ": "member",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_member_token(token: str, *, secret: str) -> dict | None:
    """Claims of a valid, unexpired member token, else None."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "tid"]}
        )
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != "member" or isinstance(claims["exp"], bool):
        return None
    for name in ("sub", "tid"):
        value = claims[name]
        if not isinstance(value, str) or not 0 < len(value) <= 64 or text_problem(value):
            return None
    return claims
