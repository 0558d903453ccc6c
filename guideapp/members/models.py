"""Members, their identities, bindings to guides, points, tags, notes and orders."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, new_id, tenant_column, tenant_fk, utcnow

CHANNELS = (
    "pos",
    "tmall",
    "jd",
    "douyin",
    "brand_mall",
    "mini_program",
    "store_scan",
    "import",
    "wechat_pay",
)
STAGES = ("prospect", "fan", "customer", "regular", "ambassador")
TIERS = ("normal", "silver", "gold", "platinum")
GENDERS = ("female", "male", "unknown")
POINT_KINDS = ("earn", "spend", "expire", "adjust")


class Member(Base):
    """One person across channels. `guide_id`/`store_id` mirror the open binding."""

    __tablename__ = "members"
    __table_args__ = (
        tenant_fk("guide_id", "staff"),
        tenant_fk("merged_into_id", "members"),
        tenant_fk("store_id", "stores"),
        UniqueConstraint("tenant_id", "phone"),
        UniqueConstraint("tenant_id", "unionid"),
        CheckConstraint("state IN ('active', 'merged')", name="state"),
        Index("ix_members_guide_id", "guide_id", "id"),
        Index("ix_members_store_id", "store_id", "id"),
        Index("ix_members_guide_phone_tail", "guide_id", "phone_tail"),
        # Bound members only: the pool (no guide) is searched by store (ix_members_store_pool).
        Index(
            "ix_members_guide_birthday",
            "guide_id",
            "birthday_mmdd",
            postgresql_where=text("guide_id IS NOT NULL"),
            sqlite_where=text("guide_id IS NOT NULL"),
        ),
        # The store's unassigned pool, in id order, for guides' searches.
        Index(
            "ix_members_store_pool",
            "store_id",
            "id",
            postgresql_where=text("guide_id IS NULL"),
            sqlite_where=text("guide_id IS NULL"),
        ),
        Index("ix_members_tenant_birthday", "tenant_id", "birthday_mmdd"),
        Index("ix_members_tenant_joined_at", "tenant_id", "joined_at"),
        Index("ix_members_tenant_first_order", "tenant_id", "first_order_at"),
        Index("ix_members_tenant_last_order", "tenant_id", "last_order_at"),
        Index("ix_members_tenant_tier_since", "tenant_id", "tier_since"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    phone: Mapped[str | None] = mapped_column(String(20))
    phone_tail: Mapped[str | None] = mapped_column(String(4))
    unionid: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(60), default="")
    gender: Mapped[str] = mapped_column(String(10), default="unknown")
    birthday: Mapped[date | None] = mapped_column(Date)
    birthday_mmdd: Mapped[str | None] = mapped_column(String(4))  # indexable "birthday this month"
    tier: Mapped[str] = mapped_column(String(20), default="normal")
    # When the member's tier last changed to what it is (NULL: the tier they came with),
    # for rules "on reaching gold" (coupons' tier_changed occasion, from the scheduler).
    tier_since: Mapped[datetime | None]
    stage: Mapped[str] = mapped_column(String(20), default="prospect")
    source_channel: Mapped[str] = mapped_column(String(20), default="store_scan")
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    guide_id: Mapped[str | None] = mapped_column(String(32))
    store_id: Mapped[str | None] = mapped_column(String(32))
    bound_at: Mapped[datetime | None]
    binding_locked_until: Mapped[datetime | None]
    first_order_at: Mapped[datetime | None]
    last_order_at: Mapped[datetime | None]
    last_contact_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(10), default="active")
    merged_into_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MemberIdentity(Base):
    """Channel ids (openid per app, Tmall/JD/Douyin customer ids) that resolve to a member."""

    __tablename__ = "member_identities"
    __table_args__ = (
        tenant_fk("member_id", "members"),
        UniqueConstraint("tenant_id", "kind", "value"),
        Index("ix_member_identities_member_id", "member_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    member_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(30))  # openid, tmall, jd, douyin, brand_mall, pos
    value: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Binding(Base):
    """History of who a member was bound to (专属导购); the open one has ended_at NULL."""

    __tablename__ = "bindings"
    __table_args__ = (
        tenant_fk("by_staff_id", "staff"),
        tenant_fk("guide_id", "staff"),
        tenant_fk("member_id", "members"),
        tenant_fk("store_id", "stores"),
        Index("ix_bindings_member_id", "member_id", "started_at"),
        Index("ix_bindings_guide_id", "guide_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    member_id: Mapped[str] = mapped_column(String(32))
    guide_id: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(20))  # recruited, rebind, transfer, merge, import
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    by_staff_id: Mapped[str | None] = mapped_column(String(32))
    transfer_id: Mapped[str | None] = mapped_column(String(32))
    # The member removed the guide from their contacts (WeCom's del_follow_user) while this
    # binding runs: the binding (and the guide's attribution) stays, the loss is recorded
    # here for a win-back (the SOP trigger `contact_lost`); cleared when they add them again.
    lost_at: Mapped[datetime | None]


class PointsEntry(Base):
    """Append-only points ledger; a member's balance is the sum of their entries."""

    __tablename__ = "points_entries"
    __table_args__ = (
        tenant_fk("member_id", "members"),
        CheckConstraint("kind IN ('earn', 'spend', 'expire', 'adjust')", name="kind"),
        Index("ix_points_entries_member_id", "member_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    member_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(10))
    points: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200), default="")
    order_id: Mapped[str | None] = mapped_column(String(32))
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TagGroup(Base):
    __tablename__ = "tag_groups"
    __table_args__ = (
        Index("ix_tag_groups_tenant_id", "tenant_id"),
        tenant_fk("store_id", "stores"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    store_id: Mapped[str | None] = mapped_column(String(32))  # NULL: HQ group
    name: Mapped[str] = mapped_column(String(60))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Tag(Base):
    """A tag in a group; `code` is its key in questionnaire code books (e.g. '3' = acne)."""

    __tablename__ = "tags"
    __table_args__ = (
        tenant_fk("store_id", "stores"),
        tenant_fk("group_id", "tag_groups"),
        UniqueConstraint("group_id", "name", "tenant_id"),
        Index("ix_tags_tenant_id", "tenant_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    group_id: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(60))
    code: Mapped[str | None] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QuestionnaireCode(Base):
    """Code book: answer `answer` to `question` of `questionnaire` means tag `tag_id`."""

    __tablename__ = "questionnaire_codes"
    __table_args__ = (
        UniqueConstraint("tenant_id", "questionnaire", "question", "answer"),
        tenant_fk("tag_id", "tags"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    questionnaire: Mapped[str] = mapped_column(String(60))
    question: Mapped[str] = mapped_column(String(60))
    answer: Mapped[str] = mapped_column(String(60))
    tag_id: Mapped[str] = mapped_column(String(32))


class MemberTag(Base):
    __tablename__ = "member_tags"
    __table_args__ = (
        tenant_fk("tag_id", "tags"),
        tenant_fk("member_id", "members"),
        tenant_fk("tagged_by", "staff"),
        UniqueConstraint("member_id", "tag_id", "tenant_id"),
        Index("ix_member_tags_tag_id", "tag_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    member_id: Mapped[str] = mapped_column(String(32))
    tag_id: Mapped[str] = mapped_column(String(32))
    # manual, questionnaire, scan_channel, purchase_rule, import
    source: Mapped[str] = mapped_column(String(20), default="manual")
    source_ref: Mapped[str | None] = mapped_column(String(100))
    tagged_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberNote(Base):
    """A guide's follow-up note. `noted_at` is the phone's time, kept only as a fact."""

    __tablename__ = "member_notes"
    __table_args__ = (
        Index("ix_member_notes_member_id", "member_id", "created_at"),
        tenant_fk("member_id", "members"),
        tenant_fk("author_id", "staff"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    member_id: Mapped[str] = mapped_column(String(32))
    author_id: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    noted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Order(Base):
    """An order from any channel; unique per channel + order number (webhooks replay)."""

    __tablename__ = "orders"
    __table_args__ = (
        tenant_fk("member_id", "members"),
        tenant_fk("store_id", "stores"),
        tenant_fk("guide_id", "staff"),
        UniqueConstraint("tenant_id", "channel", "order_no"),
        CheckConstraint(
            "amount_fen >= 0 AND refunded_fen >= 0 AND refunded_fen <= amount_fen", name="amounts"
        ),
        Index("ix_orders_member_id", "member_id", "ordered_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    member_id: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(20))
    order_no: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str | None] = mapped_column(String(32))
    guide_id: Mapped[str | None] = mapped_column(String(32))  # bound guide then
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    # What coupons took off (amount_fen is what the member paid); kept by the coupons domain.
    coupon_discount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    items: Mapped[list] = mapped_column(JSON, default=list)
    ordered_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OrderRefund(Base):
    """A refund or partial refund, its own event, unique per order + refund number."""

    __tablename__ = "order_refunds"
    __table_args__ = (
        UniqueConstraint("order_id", "refund_no", "tenant_id"),
        tenant_fk("order_id", "orders"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    order_id: Mapped[str] = mapped_column(String(32))
    refund_no: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberMerge(Base):
    """Audit of a merge: which member went into which, and what moved."""

    __tablename__ = "member_merges"
    __table_args__ = (
        tenant_fk("survivor_id", "members"),
        tenant_fk("by_staff_id", "staff"),
        tenant_fk("merged_id", "members"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    survivor_id: Mapped[str] = mapped_column(String(32))
    merged_id: Mapped[str] = mapped_column(String(32))
    by_staff_id: Mapped[str] = mapped_column(String(32))
    moved: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImportKey(Base):
    """A key (a phone, a unionid, an order number, a matched member) an import job met in
    an earlier batch of its file, and the row that had it: in-file repeats are found across
    batches and across a worker's restart without holding every key of a big file in memory.
    Written in each batch's transaction (so it agrees with the job's checkpoint), deleted
    when the job ends."""

    __tablename__ = "import_keys"
    __table_args__ = (tenant_fk("job_id", "jobs", ondelete="CASCADE"),)

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[str] = tenant_column()
    row: Mapped[int]
