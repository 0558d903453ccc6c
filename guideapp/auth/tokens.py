"""Short-lived signed access tokens (PyJWT) and opaque refresh tokens stored hashed."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import jwt

ALGORITHM = "HS256"


def issue_access_token(*, secret: str, staff_id: str, tenant_id: str, session_id: str,
                       now: datetime, ttl_seconds: int) -> str:
    claims = {
        "sub": staff_id, "tid": tenant_id, "sid": session_id, "typ": "access",
        "iat": int(now.timestamp()), "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_access_token(token: str, *, secret: str) -> dict | None:
    """Claims of a valid, unexpired access token, else None."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "sid"]}
        )
    except jwt.PyJWTError:
        return None
    return claims if claims.get("typ") == "access" else None


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
