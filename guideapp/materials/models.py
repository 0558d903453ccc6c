"""Materials, their category tree, targeting, uploaded files and share events."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, Date, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, new_id, tenant_column, tenant_fk, utcnow

KINDS = ("image", "poster", "article", "video", "mini_program", "product", "text")
LEVELS = ("hq", "store", "personal")
SHARE_CHANNELS = ("member", "group", "moments")


class MaterialCategory(Base):
    __tablename__ = "material_categories"
    __table_args__ = (
        Index("ix_material_categories_tenant_id", "tenant_id"),
        tenant_fk("parent_id", "material_categories"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    parent_id: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(60))
    position: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StoredUpload(Base):
    """A file uploaded to storage; materials point at it."""

    __tablename__ = "uploads"
    __table_args__ = (tenant_fk("uploaded_by", "staff"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    storage_key: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Material(Base):
    __tablename__ = "materials"
    __table_args__ = (
        tenant_fk("category_id", "material_categories"),
        tenant_fk("owner_staff_id", "staff"),
        tenant_fk("created_by", "staff"),
        tenant_fk("owner_store_id", "stores"),
        tenant_fk("upload_id", "uploads"),
        CheckConstraint("level IN ('hq', 'store', 'personal')", name="level"),
        Index("ix_materials_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(500))
    cover_url: Mapped[str | None] = mapped_column(String(500))
    upload_id: Mapped[str | None] = mapped_column(String(32))
    category_id: Mapped[str | None] = mapped_column(String(32))
    tags: Mapped[list] = mapped_column(JSON, default=list)
    level: Mapped[str] = mapped_column(String(10), default="hq")
    owner_store_id: Mapped[str | None] = mapped_column(String(32))
    owner_staff_id: Mapped[str | None] = mapped_column(String(32))
    # {"all": true} | {"region_ids": [...], "store_ids": [...]} (HQ level only)
    target: Mapped[dict] = mapped_column(JSON, default=dict)
    valid_from: Mapped[datetime | None]
    valid_to: Mapped[datetime | None]
    archived: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MaterialAudience(Base):
    """Who a material reaches, as sync scopes (t:/r:/s:/g:): one indexed join per list."""

    __tablename__ = "material_audiences"
    __table_args__ = (
        tenant_fk("material_id", "materials"),
        Index("ix_material_audiences_scope", "scope", "material_id"),
    )

    material_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = tenant_column()


class Share(Base):
    """A guide shared a material (to a member, a group, Moments). Push-only from phones."""

    __tablename__ = "shares"
    __table_args__ = (
        tenant_fk("material_id", "materials"),
        tenant_fk("member_id", "members"),
        tenant_fk("staff_id", "staff"),
        tenant_fk("store_id", "stores"),
        CheckConstraint("channel IN ('member', 'group', 'moments')", name="channel"),
        Index("ix_shares_material_day", "tenant_id", "material_id", "day"),
        Index("ix_shares_staff_day", "staff_id", "day"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    material_id: Mapped[str] = mapped_column(String(32))
    staff_id: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str | None] = mapped_column(String(32))
    member_id: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(10))
    day: Mapped[date] = mapped_column(Date)  # the tenant's local day
    shared_at: Mapped[datetime] = mapped_column(default=utcnow)
    shared_at_client: Mapped[datetime | None]
