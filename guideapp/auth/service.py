"""Login, refresh, logout and turning a bearer token into an Actor."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from guideapp.auth.models import AuthSession, LoginAttempt
from guideapp.passwords import verify_password
from guideapp.policy.actor import Actor
from guideapp.auth.tokens import (
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
    read_access_token,
)
from guideapp.db import utcnow
from guideapp.statements import HotRead
from guideapp.errors import LoginFailed, TooManyRequests, Unauthorized
from guideapp.org.models import Staff, Store
from guideapp.changelog import SyncCounter, newest_change_seq

BAD_LOGIN = "Phone or password is wrong."


# Built once: it runs on every request, and building a statement costs more than running it.
_ACTOR_OF_TOKEN = HotRead(
    select(Staff.id, Staff.tenant_id, Staff.role, Staff.store_id, Store.region_id)
    .join(AuthSession, AuthSession.staff_id == Staff.id)
    .outerjoin(Store, Store.id == Staff.store_id)
    .where(
        Staff.id == bindparam("staff_id"),
        Staff.state == "active",
        AuthSession.id == bindparam("session_id"),
        AuthSession.revoked_at.is_(None),
    )
)
_ACTOR_AND_CHANGE_VERSION = HotRead(
    _ACTOR_OF_TOKEN.statement.add_columns(
        newest_change_seq(Staff.tenant_id, Staff.id, Staff.store_id, Store.region_id)
    )
)
# ...and the tenant's sync counter in the same snapshot: a pull with nothing new answers
# from this one round trip (sync.service.pull).
_ACTOR_VERSION_AND_COUNTER = HotRead(
    _ACTOR_AND_CHANGE_VERSION.statement.add_columns(
        *(
            select(column).where(SyncCounter.tenant_id == Staff.tenant_id).scalar_subquery()
            for column in (SyncCounter.value, SyncCounter.oldest_kept_seq)
        )
    )
)


def authenticate_request(
    source: Session | Engine,
    authorization: str | None,
    *,
    config,
    with_change_version: bool = False,
    with_sync_counter: bool = False,
) -> Actor:
    """One query: the token's staff must be active and its login session not revoked.

    `source` is the request's Session, or the Engine for a read outside any transaction;
    `with_change_version` reads the actor's change version in the same round trip, and
    `with_sync_counter` that and the tenant's sync counter.
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized()
    claims = read_access_token(token.strip(), secret=config["SECRET_KEY"])
    if claims is None:
        raise Unauthorized("The access token is invalid or expired; refresh it or log in again.")
    statement = (
        _ACTOR_VERSION_AND_COUNTER
        if with_sync_counter
        else _ACTOR_AND_CHANGE_VERSION
        if with_change_version
        else _ACTOR_OF_TOKEN
    )
    row = statement.first(source, {"staff_id": claims["sub"], "session_id": claims["sid"]})
    if row is None:
        raise Unauthorized("This login has ended (logged out or no longer on staff).")
    staff_id, tenant_id, role, store_id, region_id, *versions = row
    return Actor(
        staff_id=staff_id,
        tenant_id=tenant_id,
        role=role,
        store_id=store_id,
        region_id=region_id,
        session_id=claims["sid"],
        change_version=versions[0] if versions else None,
        sync_counter=(versions[1], versions[2]) if len(versions) == 3 else None,
    )


def check_login_throttle(session: Session, *, phone: str | None, address: str, config) -> None:
    """429 when the phone failed too often lately from this address, or from anywhere far
    too often (a distributed guess), or the address failed too often for any phone.

    The per-phone count is per address: someone guessing a guide's password from their own
    network locks only themselves out, never the guide in the store (issue 19)."""
    since = utcnow() - timedelta(seconds=config["LOGIN_WINDOW_SECONDS"])
    by_phone = by_phone_anywhere = 0
    if phone is not None:
        here, anywhere = session.execute(
            select(
                func.count().filter(LoginAttempt.address == address),
                func.count(),
            ).where(LoginAttempt.phone == phone, LoginAttempt.attempted_at > since)
        ).one()
        by_phone, by_phone_anywhere = here, anywhere
    by_address = session.scalar(
        select(func.count()).where(
            LoginAttempt.address == address, LoginAttempt.attempted_at > since
        )
    )
    if (
        by_phone >= config["LOGIN_MAX_FAILURES_PER_PHONE"]
        or by_phone_anywhere >= config["LOGIN_MAX_FAILURES_PER_PHONE_ANYWHERE"]
        or by_address >= config["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    ):
        wait = config["LOGIN_WINDOW_SECONDS"]
        raise TooManyRequests(
            f"Too many failed logins; try again in {wait // 60} minutes.",
            headers={"Retry-After": str(wait)},
        )


def record_failed_login(session: Session, *, phone: str, address: str) -> None:
    session.add(LoginAttempt(phone=phone, address=address))
    session.flush()


def login(session: Session, *, phone: str, password: str, address: str, config) -> dict:
    """Check throttle and password, open a login session; failures are counted."""
    check_login_throttle(session, phone=phone, address=address, config=config)
    staff = session.scalar(select(Staff).where(Staff.phone == phone))
    ok = verify_password(staff.password_hash if staff else None, password)
    if not ok or staff is None or staff.state != "active":
        record_failed_login(session, phone=phone, address=address)
        raise LoginFailed(BAD_LOGIN)
    # Only this address's failures are forgiven: a guesser elsewhere keeps their count.
    session.execute(
        delete(LoginAttempt).where(LoginAttempt.phone == phone, LoginAttempt.address == address)
    )
    return _open_session(session, staff, config)


def refresh(session: Session, *, refresh_token: str, config) -> dict:
    """Rotate: the old refresh token stops working, a new pair is issued."""
    auth = session.scalar(
        select(AuthSession)
        .where(AuthSession.refresh_token_hash == hash_refresh_token(refresh_token))
        .with_for_update()
    )
    now = utcnow()
    if auth is None or auth.revoked_at is not None or auth.expires_at <= now:
        raise Unauthorized("The refresh token is invalid, expired or revoked; log in again.")
    staff = session.get(Staff, auth.staff_id)
    if staff is None or staff.state != "active":
        raise Unauthorized("This login has ended (no longer on staff).")
    token = new_refresh_token()
    auth.refresh_token_hash = hash_refresh_token(token)
    auth.last_refreshed_at = now
    return _tokens(staff, auth, token, config)


def logout(session: Session, *, actor: Actor) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.id == actor.session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def end_logins(session: Session, *, staff, **_ignored) -> None:
    """org.staff_signed_off / staff_password_changed: the staff member's logins end now."""
    revoke_all_sessions(session, staff_id=staff.id)


def clear_failed_logins(session: Session, *, staff, **_ignored) -> None:
    """org.staff_password_changed: HQ's reset path. A new password set for a locked-out
    guide lets them in at once, from anywhere."""
    session.execute(delete(LoginAttempt).where(LoginAttempt.phone == staff.phone))


def revoke_all_sessions(session: Session, *, staff_id: str) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.staff_id == staff_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def _open_session(session: Session, staff: Staff, config) -> dict:
    token = new_refresh_token()
    auth = AuthSession(
        tenant_id=staff.tenant_id,
        staff_id=staff.id,
        refresh_token_hash=hash_refresh_token(token),
        expires_at=utcnow() + timedelta(seconds=config["REFRESH_TOKEN_TTL_SECONDS"]),
    )
    session.add(auth)
    session.flush()
    return _tokens(staff, auth, token, config)


def _tokens(staff: Staff, auth: AuthSession, refresh_token: str, config) -> dict:
    ttl = config["ACCESS_TOKEN_TTL_SECONDS"]
    access = issue_access_token(
        secret=config["SECRET_KEY"],
        staff_id=staff.id,
        tenant_id=staff.tenant_id,
        session_id=auth.id,
        now=utcnow(),
        ttl_seconds=ttl,
    )
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "refresh_token": refresh_token,
        "refresh_expires_at": auth.expires_at,
    }
