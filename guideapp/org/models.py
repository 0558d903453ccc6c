"""Tenant -> brands -> regions -> stores -> staff."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from guideapp.db import Base, new_id, tenant_column, tenant_fk, utcnow

ROLES = ("hq_admin", "store_manager", "guide")
STAFF_STATES = ("active", "left")
STORE_STATES = ("open", "closed")
COORD_SYSTEMS = ("gcj02", "wgs84")


class Tenant(Base):
    """A brand group; nothing crosses its boundary."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    binding_lock_days: Mapped[int] = mapped_column(default=90)
    # e.g. {"regular_min_orders": 3, "regular_window_days": 180}; see members/lifecycle.py
    lifecycle_rules: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Brand(Base):
    __tablename__ = "brands"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))


class Region(Base):
    __tablename__ = "regions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        tenant_fk("brand_id", "brands"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    brand_id: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))


class Store(Base):
    """A shop. Coordinates are kept in GCJ-02, the system of Chinese maps and store lists."""

    __tablename__ = "stores"
    __table_args__ = (
        tenant_fk("region_id", "regions"),
        tenant_fk("brand_id", "brands"),
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint("state IN ('open', 'closed')", name="state"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lng BETWEEN -180 AND 180", name="coords"),
        CheckConstraint("service_radius_m > 0", name="radius"),
        Index("ix_stores_tenant_lat_lng", "tenant_id", "lat", "lng"),
        Index("ix_stores_region_id", "region_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    brand_id: Mapped[str] = mapped_column(String(32))
    region_id: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    city: Mapped[str] = mapped_column(String(60))
    address: Mapped[str] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(40))
    lat: Mapped[float] = mapped_column(Float)
    lng: Mapped[float] = mapped_column(Float)
    service_radius_m: Mapped[int] = mapped_column(default=5000)
    state: Mapped[str] = mapped_column(String(10), default="open")
    opening_hours: Mapped[dict] = mapped_column(JSON, default=dict)
    wecom_contact_qr_url: Mapped[str | None] = mapped_column(String(500))
    community_qr_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # Joined on the id alone (the keys also carry tenant_id): assigning a relationship sets
    # the id column, never the row's own tenant_id.
    tag_rows: Mapped[list[StoreTag]] = relationship(
        primaryjoin="Store.id == foreign(StoreTag.store_id)",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="StoreTag.tag",
    )
    region: Mapped[Region] = relationship(
        primaryjoin="Region.id == foreign(Store.region_id)", lazy="joined"
    )

    @property
    def tags(self) -> list[str]:
        return sorted(row.tag for row in self.tag_rows)


class StoreTag(Base):
    """Store tags in their own rows so campaigns can target them with one indexed join."""

    __tablename__ = "store_tags"
    __table_args__ = (
        Index("ix_store_tags_tenant_tag", "tenant_id", "tag"),
        tenant_fk("store_id", "stores"),
    )

    store_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = tenant_column()


class Staff(Base):
    """HQ admins, store managers and guides. Login phones are unique across tenants."""

    __tablename__ = "staff"
    __table_args__ = (
        tenant_fk("store_id", "stores"),
        CheckConstraint("role IN ('hq_admin', 'store_manager', 'guide')", name="role"),
        CheckConstraint("state IN ('active', 'left')", name="state"),
        CheckConstraint("role = 'hq_admin' OR store_id IS NOT NULL", name="store_staff_have_store"),
        Index("ix_staff_store_id", "store_id"),
        Index("ix_staff_tenant_id", "tenant_id"),
        # WeCom names a guide by their user id in the corp: one person per id per brand.
        UniqueConstraint("tenant_id", "wecom_userid"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    store_id: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    wecom_userid: Mapped[str | None] = mapped_column(String(64))  # their user id in the corp
    state: Mapped[str] = mapped_column(String(10), default="active")
    left_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    store: Mapped[Store | None] = relationship(
        primaryjoin="Store.id == foreign(Staff.store_id)", lazy="joined"
    )
