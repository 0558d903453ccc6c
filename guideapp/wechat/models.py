"""A tenant's WeChat apps (secrets encrypted), and the shared cache of WeChat tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, tenant_column, new_id, utcnow


class WechatConfig(Base):
    """One row per tenant. *_secret columns hold Fernet tokens (guideapp/secretbox.py),
    never the plain secret. WeChat Pay merchants are guideapp/wechatpay's (a brand may have
    several)."""

    __tablename__ = "wechat_configs"
    __table_args__ = (
        # A mini-program is one brand's: its appid names the tenant a staff login is for.
        Index("uq_wechat_configs_mp_appid", "mp_appid", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), unique=True)
    # Mini-program (wx.login -> code2session, phone-number codes, mini-program codes).
    mp_appid: Mapped[str | None] = mapped_column(String(32))
    mp_secret: Mapped[str | None] = mapped_column(Text)
    # The mini-program page a mini-program code opens (None: GUIDEAPP_WECHAT_MP_CODE_PAGE).
    mp_code_page: Mapped[str | None] = mapped_column(String(128))
    # Official account (H5 OAuth snsapi_base on the landing page, JS-SDK signatures).
    oa_appid: Mapped[str | None] = mapped_column(String(32))
    oa_secret: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WechatCacheEntry(Base):
    """wechatpy's session storage when there is no Redis: access tokens and jsapi tickets
    shared by every worker (each fetch of /cgi-bin/token invalidates the previous token
    after a few minutes, so per-worker caches would keep knocking each other out)."""

    __tablename__ = "wechat_cache"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)  # JSON
    expires_at: Mapped[datetime | None] = mapped_column()


class MiniProgramCode(Base):
    """A mini-program code image WeChat made (getwxacodeunlimit), kept in storage: WeChat
    is asked once per (app, scene, page); a new scene or page is a new row."""

    __tablename__ = "wechat_mp_codes"
    __table_args__ = (UniqueConstraint("appid", "scene", "page", "tenant_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    appid: Mapped[str] = mapped_column(String(32))
    scene: Mapped[str] = mapped_column(String(32))
    page: Mapped[str] = mapped_column(String(128))
    storage_key: Mapped[str] = mapped_column(String(200))
    mimetype: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
