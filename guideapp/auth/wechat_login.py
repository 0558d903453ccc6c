"""Staff log in with the mini-program: a wx.login code stands for their WeChat identity,
bound once to their staff account (docs/wechat.md, "Staff login").

Which brand: the mini-program's appid, sent beside the code (the config maps appid ->
tenant; one appid belongs to one brand). Same tokens, throttle and loss of access as the
password login (auth/service.py): a code WeChat refuses counts as a failed attempt of the
address, a wrong password or an unknown phone as one of the phone and the address.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.auth.models import LoginAttempt, StaffWechat
from guideapp.auth.service import (
    BAD_LOGIN,
    _open_session,
    check_login_throttle,
    record_failed_login,
    revoke_all_sessions,
)
from guideapp.errors import Conflict, InvalidInput, LoginFailed
from guideapp.org import service as org
from guideapp.org.models import Staff
from guideapp.passwords import verify_password
from guideapp.policy.actor import Actor
from guideapp.wechat import service as wechat
from guideapp.wechat.clients import WechatCodeRefused


T = TypeVar("T")


class WechatNotBound(Conflict):
    default_message = (
        "This WeChat is not bound to a staff account yet (wechat_not_bound): get a new "
        "wx.login code and bind it with POST /api/v1/auth/wechat/bind and your phone and "
        "password, or your WeChat phone code."
    )


class CodeRefusedCounted(WechatCodeRefused):
    """WeChat refused the code: a 422 whose attempt still counts for the throttle."""

    keep_writes = True


def login(session: Session, *, appid: str, code: str, address: str, config) -> dict:
    """A wx.login code -> the bound staff member's token pair; 409 wechat_not_bound."""
    tenant_id = _tenant(session, appid)
    check_login_throttle(session, phone=None, address=address, config=config)
    identity = _identity(session, tenant_id, appid, code, address)
    bound = session.scalar(
        select(StaffWechat).where(
            StaffWechat.tenant_id == tenant_id,
            StaffWechat.appid == identity.appid,
            StaffWechat.openid == identity.openid,
        )
    )
    if bound is None:
        raise WechatNotBound(errors={"code": ["wechat_not_bound"]})
    staff = session.get(Staff, bound.staff_id)
    if staff is None or staff.state != "active":  # (leaving unbinds: not reached)
        raise LoginFailed("This staff account is no longer active.")
    return _open_session(session, staff, config)


def bind(
    session: Session,
    *,
    appid: str,
    code: str,
    address: str,
    config,
    phone: str | None = None,
    password: str | None = None,
    phone_code: str | None = None,
) -> dict:
    """Bind the code's WeChat identity to the staff account proven by phone + password or
    by WeChat's phone code (the staff phone), then log in. Refusals write nothing but the
    counted attempt; the password is checked before any code is exchanged."""
    tenant_id = _tenant(session, appid)
    if phone_code is None:
        assert phone is not None and password is not None  # (the schema says one or other)
        check_login_throttle(session, phone=phone, address=address, config=config)
        staff = _staff(session, tenant_id, phone)
        hashed = staff.password_hash if staff is not None else None
        if not verify_password(hashed, password) or staff is None:
            record_failed_login(session, phone=phone, address=address)
            raise LoginFailed(BAD_LOGIN)
    else:
        check_login_throttle(session, phone=None, address=address, config=config)
        phone = _counted(
            session,
            address,
            appid,
            lambda: wechat.phone_from_code(session, tenant_id, phone_code, field="phone_code"),
        )
        check_login_throttle(session, phone=phone, address=address, config=config)
        staff = _staff(session, tenant_id, phone)
        if staff is None:
            record_failed_login(session, phone=phone, address=address)
            raise LoginFailed(
                f"The phone WeChat verified ({phone[:3]}****{phone[-4:]}) is no active staff "
                "member's of this brand: bind with your staff phone and password instead."
            )
    identity = _identity(session, tenant_id, appid, code, address)
    if not _already_bound(session, tenant_id, staff, identity):
        session.add(
            StaffWechat(
                tenant_id=tenant_id,
                staff_id=staff.id,
                appid=identity.appid,
                openid=identity.openid,
                unionid=identity.unionid,
            )
        )
    session.execute(delete(LoginAttempt).where(LoginAttempt.phone == phone))
    return _open_session(session, staff, config)


def binding(session: Session, *, actor: Actor, staff_id: str) -> dict:
    """Whether a staff member (one the actor may see) has WeChat bound."""
    staff = org.get_staff(session, actor=actor, staff_id=staff_id)
    row = session.scalar(select(StaffWechat).where(StaffWechat.staff_id == staff.id))
    return {
        "staff_id": staff.id,
        "bound": row is not None,
        "appid": row.appid if row else None,
        "unionid_known": bool(row and row.unionid),
        "bound_at": row.bound_at if row else None,
    }


def unbind(session: Session, *, actor: Actor, staff_id: str) -> None:
    """HQ unbinds: the WeChat identity is free to bind again, and the staff member's logins
    end now (a lost or handed-on phone is why HQ unbinds). Unbinding nothing changes
    nothing."""
    staff = org.get_staff(session, actor=actor, staff_id=staff_id)
    policy.require(actor, "unbind_staff_wechat")
    removed = session.execute(delete(StaffWechat).where(StaffWechat.staff_id == staff.id))
    if removed.rowcount:  # type: ignore[attr-defined]
        revoke_all_sessions(session, staff_id=staff.id)


def release_on_leaving(session: Session, *, staff, **_ignored) -> None:
    """org.staff_signed_off: someone who left holds no WeChat login (their logins end in
    end_logins); the identity may bind to a new account of theirs later."""
    session.execute(delete(StaffWechat).where(StaffWechat.staff_id == staff.id))


# --- helpers --------------------------------------------------------------------------------


def _tenant(session: Session, appid: str) -> str:
    tenant_id = wechat.tenant_of_mini_program(session, appid)
    if tenant_id is None:
        raise InvalidInput(
            "No brand uses this mini-program with guideapp (wechat_not_configured).",
            errors={"appid": ["Unknown mini-program appid."]},
        )
    return tenant_id


def _staff(session: Session, tenant_id: str, phone: str) -> Staff | None:
    return session.scalar(
        select(Staff).where(
            Staff.tenant_id == tenant_id, Staff.phone == phone, Staff.state == "active"
        )
    )


def _identity(session: Session, tenant_id: str, appid: str, code: str, address: str):
    return _counted(
        session,
        address,
        appid,
        lambda: wechat.identity_from_login_code(session, tenant_id, code, field="code"),
    )


def _counted(session: Session, address: str, appid: str, exchange: Callable[[], T]) -> T:
    """Exchange a code; one WeChat refuses is a failed attempt of the address."""
    try:
        return exchange()
    except WechatCodeRefused as refused:
        record_failed_login(session, phone=f"wechat:{appid}", address=address)
        raise CodeRefusedCounted(refused.message, errors=refused.errors) from None


def _already_bound(session: Session, tenant_id: str, staff: Staff, identity) -> bool:
    """True when this identity is this staff member's already; 409 when either is bound
    to someone else."""
    holder = session.scalar(
        select(StaffWechat.staff_id).where(
            StaffWechat.tenant_id == tenant_id,
            StaffWechat.appid == identity.appid,
            StaffWechat.openid == identity.openid,
        )
    )
    if holder is not None and holder != staff.id:
        raise Conflict(
            "This WeChat is bound to another staff account: HQ must unbind it there first "
            "(DELETE /api/v1/staff/<id>/wechat).",
            errors={"code": ["wechat_bound_elsewhere"]},
        )
    mine = session.scalar(
        select(StaffWechat.openid).where(
            StaffWechat.staff_id == staff.id, StaffWechat.appid == identity.appid
        )
    )
    if mine is not None and mine != identity.openid:
        raise Conflict(
            "This staff account is bound to another WeChat: HQ must unbind it first "
            "(DELETE /api/v1/staff/<id>/wechat).",
            errors={"phone": ["staff_wechat_already_bound"]},
        )
    return mine is not None
