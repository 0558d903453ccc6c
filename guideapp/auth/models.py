"""Login sessions (refresh tokens), login attempts for throttling, and the WeChat
identities staff log in with."""

from datetime import datetime

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, tenant_column, new_id, tenant_fk, utcnow


class AuthSession(Base):
    """One login on one device. Revoking it kills its refresh token and its access tokens."""

    __tablename__ = "auth_sessions"
    __table_args__ = (
        tenant_fk("staff_id", "staff"),
        Index("ix_auth_sessions_staff_id", "staff_id"),
        # The hash of 256 random bits is unique by itself; tenant_id rides along because a
        # distributed table's unique keys must hold it, and a refresh looks up by hash alone.
        UniqueConstraint("refresh_token_hash", "tenant_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    staff_id: Mapped[str] = mapped_column(String(32))
    refresh_token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_refreshed_at: Mapped[datetime | None]


class LoginAttempt(Base):
    """Failed logins, counted per phone and per client address over a sliding window."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_phone_at", "phone", "attempted_at"),
        Index("ix_login_attempts_address_at", "address", "attempted_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    phone: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffWechat(Base):
    """A staff member's mini-program identity (openid in one app's namespace): they log in
    with a wx.login code instead of a password. Lives in auth, not org: it is a way to log
    in, and auth may read org's staff while org knows nothing of logins.

    One WeChat identity per staff account and app, one staff account per identity and
    tenant: a second bind either way is refused until HQ unbinds the first."""

    __tablename__ = "staff_wechat"
    __table_args__ = (
        tenant_fk("staff_id", "staff"),
        UniqueConstraint("tenant_id", "appid", "openid"),
        UniqueConstraint("staff_id", "appid", "tenant_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    staff_id: Mapped[str] = mapped_column(String(32))
    appid: Mapped[str] = mapped_column(String(32))
    openid: Mapped[str] = mapped_column(String(64))
    unionid: Mapped[str | None] = mapped_column(String(64))
    bound_at: Mapped[datetime] = mapped_column(default=utcnow)
