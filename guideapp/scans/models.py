"""Channel codes, the scans recorded against them, and the counters the scan endpoint keeps."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, new_id, tenant_column, tenant_fk, utcnow

CODE_KINDS = ("lbs", "store", "guide")
CHANNELS = (
    "poster",
    "receipt",
    "table_card",
    "package_card",
    "sms",
    "ai_call",
    "live_stream",
    "moments",
    "community",
    "mini_program",
    "other",
)
RESOLUTIONS = ("nearest", "store", "guide", "fallback_store", "fallback_url", "none")


class ScanCode(Base):
    """A QR code: LBS (whole campaign), a store's, or a guide's personal code."""

    __tablename__ = "scan_codes"
    __table_args__ = (
        tenant_fk("fallback_store_id", "stores"),
        tenant_fk("created_by", "staff"),
        tenant_fk("store_id", "stores"),
        tenant_fk("guide_id", "staff"),
        tenant_fk("coupon_template_id", "coupon_templates"),
        CheckConstraint("kind IN ('lbs', 'store', 'guide')", name="kind"),
        CheckConstraint("kind = 'lbs' OR store_id IS NOT NULL", name="store_codes_have_store"),
        CheckConstraint("kind <> 'guide' OR guide_id IS NOT NULL", name="guide_codes_have_guide"),
        Index("ix_scan_codes_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_scan_codes_store_id", "store_id"),
        Index("ix_scan_codes_guide_id", "guide_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    code: Mapped[str] = mapped_column(String(40), unique=True)  # public, in the QR URL
    kind: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(120), default="")
    store_id: Mapped[str | None] = mapped_column(String(32))
    guide_id: Mapped[str | None] = mapped_column(String(32))
    tag_ids: Mapped[list] = mapped_column(JSON, default=list)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    fallback_store_id: Mapped[str | None] = mapped_column(String(32))
    fallback_url: Mapped[str | None] = mapped_column(String(500))
    # Identified members who scan it get one coupon of this template (coupons.from_scans).
    coupon_template_id: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Scan(Base):
    """One scan, for attribution: where it was, where it was sent, whom it recruited."""

    __tablename__ = "scans"
    __table_args__ = (
        tenant_fk("code_id", "scan_codes"),
        tenant_fk("guide_id", "staff"),
        tenant_fk("store_id", "stores"),
        tenant_fk("member_id", "members"),
        Index("ix_scans_tenant_day", "tenant_id", "scanned_on"),
        Index("ix_scans_code_day", "code_id", "scanned_on"),
        Index("ix_scans_store_day", "store_id", "scanned_on"),
        Index("ix_scans_guide_day", "guide_id", "scanned_on"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    code_id: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))  # a RESOLUTION, or expired / not_yet_valid
    lat: Mapped[float | None] = mapped_column(Float)  # GCJ-02
    lng: Mapped[float | None] = mapped_column(Float)
    coord_system: Mapped[str | None] = mapped_column(String(10))  # as the page sent it
    store_id: Mapped[str | None] = mapped_column(String(32))
    guide_id: Mapped[str | None] = mapped_column(String(32))
    distance_m: Mapped[float | None] = mapped_column(Float)
    member_id: Mapped[str | None] = mapped_column(String(32))
    member_created: Mapped[bool] = mapped_column(default=False)
    bound: Mapped[bool] = mapped_column(default=False)  # this scan bound the member to a guide
    client_address: Mapped[str | None] = mapped_column(String(64))
    # A phone the consumer typed on an unidentified scan: an unverified lead for the guide to
    # follow up, never an identity (only WeChat's phone-number code identifies).
    lead_phone: Mapped[str | None] = mapped_column(String(20))
    scanned_at: Mapped[datetime] = mapped_column(default=utcnow)
    scanned_on: Mapped[date] = mapped_column(Date)  # the tenant's local day, for statistics


class ScanRateWindow(Base):
    """Fixed-window hit counters (per code, per client address), shared by every worker."""

    __tablename__ = "scan_rate_windows"
    __table_args__ = (Index("ix_scan_rate_windows_window_start", "window_start"),)

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hits: Mapped[int] = mapped_column(Integer, default=0)


class GuideRotation(Base):
    """Per-store round-robin cursor: UPDATE ... RETURNING hands each scan the next guide."""

    __tablename__ = "scan_guide_rotations"
    __table_args__ = (tenant_fk("store_id", "stores"),)

    store_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = tenant_column()
    turns: Mapped[int] = mapped_column(BigInteger, default=0)
