"""WeChat Pay merchants per tenant (a brand may have one per region, or sub-merchants)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, new_id, tenant_column, tenant_fk, utcnow


class PayMerchant(Base):
    """One WeChat Pay merchant id (mchid) of a tenant and what verifying its notifications
    takes. The APIv3 key is sealed (guideapp/secretbox.py) and never leaves the server."""

    __tablename__ = "wechat_pay_merchants"
    __table_args__ = (
        tenant_fk("store_id", "stores"),
        UniqueConstraint("tenant_id", "mchid"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    name: Mapped[str] = mapped_column(String(60))
    mchid: Mapped[str] = mapped_column(String(32))
    # The mini-program / official-account appids orders are placed with; empty: any.
    appids: Mapped[list] = mapped_column(JSON, default=list)
    apiv3_key_sealed: Mapped[str] = mapped_column(Text)
    # [{"serial": ..., "public_key": PEM, "source": "public_key" | "certificate"}]: several
    # while WeChat rotates its key; a notification names its key in Wechatpay-Serial.
    platform_keys: Mapped[list] = mapped_column(JSON, default=list)
    # Where a payment is booked when its `attach` names no store and its terminal none.
    store_id: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PayTerminal(Base):
    """A merchant's payment terminal (scene_info.device_id) and the store it stands in."""

    __tablename__ = "wechat_pay_terminals"
    __table_args__ = (
        tenant_fk("merchant_id", "wechat_pay_merchants", ondelete="CASCADE"),
        tenant_fk("store_id", "stores"),
        UniqueConstraint("merchant_id", "device_id", "tenant_id"),
        Index("ix_wechat_pay_terminals_store_id", "store_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    merchant_id: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(32))
