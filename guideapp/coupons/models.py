"""Coupon templates, the coupons issued from them, their redemptions and the rules that
issue them on member events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, new_id, tenant_column, tenant_fk, utcnow

KINDS = ("amount_off", "percent_off", "gift")
STATES = ("available", "used", "expired", "revoked")
# Who or what issued a coupon (coupons.source); source_id names the rule, job or scan.
SOURCES = ("rule", "staff", "bulk", "scan", "points")
OCCASIONS = (
    "first_order",  # params {} (the member's first order)
    "nth_order",  # params {"n": 2}
    "birthday",  # once a year, on the local birthday
    "member_joined",
    "tier_changed",  # params {"tier": "gold"}: on reaching that tier
    "silent",  # params {"silent_days": 60}: win-back, once per silence
)


class CouponTemplate(Base):
    """What a coupon gives, where and when it counts, and how many may be issued.

    HQ's templates have no store; a manager's are their store's (and usable only there)."""

    __tablename__ = "coupon_templates"
    __table_args__ = (
        tenant_fk("store_id", "stores"),
        tenant_fk("created_by", "staff"),
        CheckConstraint("kind IN ('amount_off', 'percent_off', 'gift')", name="kind"),
        CheckConstraint(
            "(kind = 'amount_off' AND amount_off_fen > 0) OR "
            "(kind = 'percent_off' AND percent_off_bp > 0 AND percent_off_bp <= 10000) OR "
            "(kind = 'gift' AND gift_item IS NOT NULL)",
            name="benefit",
        ),
        CheckConstraint(
            "(valid_days IS NOT NULL AND valid_from IS NULL AND valid_to IS NULL) OR "
            "(valid_days IS NULL AND valid_from IS NOT NULL AND valid_to IS NOT NULL "
            "AND valid_from < valid_to)",
            name="validity",
        ),
        CheckConstraint("threshold_fen >= 0", name="threshold"),
        CheckConstraint(
            "stock_total IS NULL OR (issued_count >= 0 AND issued_count <= stock_total)",
            name="stock",
        ),
        CheckConstraint("per_member_limit >= 1", name="per_member_limit"),
        Index("ix_coupon_templates_tenant_id", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    store_id: Mapped[str | None] = mapped_column(String(32))  # a manager's store template
    name: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(12))
    amount_off_fen: Mapped[int | None] = mapped_column(BigInteger)
    percent_off_bp: Mapped[int | None]  # 2000 = 20% off (a "八折" coupon)
    max_discount_fen: Mapped[int | None] = mapped_column(BigInteger)  # cap of percent_off
    gift_item: Mapped[str | None] = mapped_column(String(120))
    threshold_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # minimum spend
    valid_from: Mapped[datetime | None]  # a fixed window...
    valid_to: Mapped[datetime | None]
    valid_days: Mapped[int | None]  # ...or N local days from issue (to the day's end)
    # Where it counts; an empty list means everywhere (a store template: its store only).
    store_ids: Mapped[list] = mapped_column(JSON, default=list)
    region_ids: Mapped[list] = mapped_column(JSON, default=list)
    channels: Mapped[list] = mapped_column(JSON, default=list)
    stock_total: Mapped[int | None]  # NULL: no limit
    issued_count: Mapped[int] = mapped_column(default=0)
    low_stock_threshold: Mapped[int | None]
    low_stock_at: Mapped[datetime | None]  # when the stock left fell to the threshold
    per_member_limit: Mapped[int] = mapped_column(default=1)
    stackable: Mapped[bool] = mapped_column(default=False)
    return_on_refund: Mapped[bool] = mapped_column(default=True)
    points_cost: Mapped[int | None]  # members may exchange this many points for one
    description: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(default=1)  # moves when what a guide sends changes
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Coupon(Base):
    """One coupon in one member's wallet. `issue_key` makes every way of issuing exactly
    once: a rule's (rule, member, occasion), a push's record id, a bulk job's member."""

    __tablename__ = "coupons"
    __table_args__ = (
        tenant_fk("template_id", "coupon_templates"),
        tenant_fk("member_id", "members"),
        tenant_fk("issued_by", "staff"),
        tenant_fk("store_id", "stores"),
        UniqueConstraint("tenant_id", "code"),
        UniqueConstraint("tenant_id", "issue_key"),
        CheckConstraint("state IN ('available', 'used', 'expired', 'revoked')", name="state"),
        CheckConstraint("source IN ('rule', 'staff', 'bulk', 'scan', 'points')", name="source"),
        CheckConstraint("valid_from < valid_to", name="validity"),
        Index("ix_coupons_member_id", "member_id", "state"),
        Index("ix_coupons_template_id", "template_id", "member_id"),
        Index("ix_coupons_expiry", "tenant_id", "state", "valid_to"),
        Index("ix_coupons_issued", "tenant_id", "issued_at"),  # reports by window
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    template_id: Mapped[str] = mapped_column(String(32))
    template_version: Mapped[int] = mapped_column(default=1)
    member_id: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(16))  # random: what a till scans or types
    state: Mapped[str] = mapped_column(String(10), default="available")
    state_reason: Mapped[str | None] = mapped_column(String(40))  # expired, refunded...
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime]
    issue_key: Mapped[str] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(10))
    source_id: Mapped[str | None] = mapped_column(String(64))  # rule, job, scan, code
    issued_by: Mapped[str | None] = mapped_column(String(32))  # the guide or manager
    store_id: Mapped[str | None] = mapped_column(String(32))  # the issuing store (reports)
    task_id: Mapped[str | None] = mapped_column(String(64))
    campaign_id: Mapped[str | None] = mapped_column(String(32))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CouponRedemption(Base):
    """A coupon used on an order at a till; `reversed_at` when the order was refunded in
    full. The order is linked once it reaches us (it may come before or after)."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (
        tenant_fk("coupon_id", "coupons"),
        tenant_fk("store_id", "stores"),
        tenant_fk("order_id", "orders"),
        tenant_fk("redeemed_by", "staff"),
        CheckConstraint(
            "amount_fen >= 0 AND discount_fen >= 0 AND discount_fen <= amount_fen",
            name="amounts",
        ),
        Index("ix_coupon_redemptions_order", "tenant_id", "channel", "order_no"),
        Index("ix_coupon_redemptions_coupon_id", "coupon_id"),
        Index("ix_coupon_redemptions_day", "tenant_id", "redeemed_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    coupon_id: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(20))
    order_no: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str | None] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # the order before coupons
    discount_fen: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[str | None] = mapped_column(String(32))
    redeemed_by: Mapped[str | None] = mapped_column(String(32))
    redeemed_at: Mapped[datetime] = mapped_column(default=utcnow)
    reversed_at: Mapped[datetime | None]


class CouponRule(Base):
    """ "First purchase, a 1-yuan coupon": a template issued on a member occasion, once per
    member and occasion (the coupon's issue_key), from events or the scheduler tick."""

    __tablename__ = "coupon_rules"
    __table_args__ = (
        tenant_fk("template_id", "coupon_templates"),
        tenant_fk("created_by", "staff"),
        CheckConstraint(
            "occasion IN ('first_order', 'nth_order', 'birthday', 'member_joined', "
            "'tier_changed', 'silent')",
            name="occasion",
        ),
        Index("ix_coupon_rules_tenant_id", "tenant_id", "occasion"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    name: Mapped[str] = mapped_column(String(120))
    occasion: Mapped[str] = mapped_column(String(20))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    template_id: Mapped[str] = mapped_column(String(32))
    # Scheduler-issued coupons go out from this local hour (business hours), not at 3 a.m.
    window_start: Mapped[str] = mapped_column(String(5), default="10:00")
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
