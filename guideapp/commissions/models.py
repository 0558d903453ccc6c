"""Commission rule versions, recruits, the append-only ledger, settlements and statements."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, new_id, tenant_column, tenant_fk, utcnow

RULE_KINDS = ("recruit_bounty", "tier_bonus", "order_percent")
RULE_SCOPES = ("tenant", "region", "store", "campaign")
ORDER_BASES = ("first", "binding")
EARNING_KINDS = ("bounty", "order", "tier")


class CommissionRule(Base):
    """One version of a rule; a new version supersedes from its `effective_from`, never edits."""

    __tablename__ = "commission_rules"
    __table_args__ = (
        tenant_fk("created_by", "staff"),
        UniqueConstraint("tenant_id", "rule_key", "version"),
        CheckConstraint("kind IN ('recruit_bounty', 'tier_bonus', 'order_percent')", name="kind"),
        CheckConstraint("scope IN ('tenant', 'region', 'store', 'campaign')", name="scope"),
        CheckConstraint(
            "amount_fen >= 0 AND cap_fen >= 0 AND rate_bp BETWEEN 0 AND 10000", name="amounts"
        ),
        Index("ix_commission_rules_tenant_kind", "tenant_id", "kind", "effective_from"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    rule_key: Mapped[str] = mapped_column(String(32))  # the id of version 1: the rule's name
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(10), default="tenant")
    scope_id: Mapped[str | None] = mapped_column(String(32))
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)  # bounty per recruit
    rate_bp: Mapped[int | None] = mapped_column(Integer)  # basis points of an order
    order_basis: Mapped[str | None] = mapped_column(String(10))  # first | binding
    tiers: Mapped[list | None] = mapped_column(JSON)  # [{"recruits": 200, "bonus_fen": 10000}]
    cap_fen: Mapped[int | None] = mapped_column(BigInteger)  # per guide per month
    active: Mapped[bool] = mapped_column(default=True)
    effective_from: Mapped[datetime]
    effective_until: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommissionRecruit(Base):
    """One row per recruited member; `person_id` follows merges so a person counts once."""

    __tablename__ = "commission_recruits"
    __table_args__ = (
        tenant_fk("guide_id", "staff"),
        tenant_fk("store_id", "stores"),
        tenant_fk("member_id", "members"),
        UniqueConstraint("tenant_id", "member_id"),
        CheckConstraint("state IN ('counted', 'duplicate', 'staff')", name="state"),
        Index("ix_commission_recruits_person", "tenant_id", "person_id"),
        Index("ix_commission_recruits_guide_month", "guide_id", "month"),
        Index("ix_commission_recruits_store_month", "store_id", "month"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    member_id: Mapped[str] = mapped_column(String(32))
    person_id: Mapped[str] = mapped_column(String(32))
    guide_id: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(20))
    campaign_id: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(10))  # counted, duplicate, staff
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM in the tenant's zone
    recruited_at: Mapped[datetime]


class CommissionMonthCount(Base):
    """A guide's counted recruits in a month (the tiers' count), kept with every recruit row
    that becomes or stops being counted: reading it costs one row however many there are."""

    __tablename__ = "commission_month_counts"
    __table_args__ = (tenant_fk("guide_id", "staff"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    guide_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # as CommissionRecruit.month
    counted: Mapped[int] = mapped_column(Integer, default=0)


class CommissionEntry(Base):
    """An append-only ledger line in fen; never updated or deleted (reversals correct it)."""

    __tablename__ = "commission_entries"
    __table_args__ = (
        tenant_fk("store_id", "stores"),
        tenant_fk("member_id", "members"),
        tenant_fk("reverses_id", "commission_entries"),
        tenant_fk("guide_id", "staff"),
        tenant_fk("rule_id", "commission_rules"),
        UniqueConstraint("tenant_id", "source_type", "source_id", "rule_id", "kind"),
        CheckConstraint("kind IN ('bounty', 'order', 'tier', 'clawback', 'reversal')", name="kind"),
        CheckConstraint(
            "(kind IN ('clawback', 'reversal') AND amount_fen <= 0) OR "
            "(kind IN ('bounty', 'order', 'tier') AND amount_fen >= 0)",
            name="sign",
        ),
        Index(
            "ix_commission_entries_guide_month", "guide_id", "accounting_month", "created_at", "id"
        ),
        Index("ix_commission_entries_tenant_month", "tenant_id", "accounting_month"),
        Index("ix_commission_entries_store_month", "store_id", "accounting_month"),
        Index("ix_commission_entries_member_id", "member_id"),
        Index("ix_commission_entries_reverses_id", "reverses_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    guide_id: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[str | None] = mapped_column(String(32))
    rule_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(10))  # EARNING_KINDS, clawback, reversal
    source_type: Mapped[str] = mapped_column(String(10))  # recruit, order, refund, tier, merge
    source_id: Mapped[str] = mapped_column(String(120))
    reverses_id: Mapped[str | None] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    basis_fen: Mapped[int | None] = mapped_column(BigInteger)  # the order or refund amount
    event_at: Mapped[datetime]
    accounting_month: Mapped[str] = mapped_column(String(7))  # fixed at write time
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommissionSettlement(Base):
    """A closed month of one tenant: frozen; draft until HQ approves it."""

    __tablename__ = "commission_settlements"
    __table_args__ = (
        tenant_fk("closed_by", "staff"),
        tenant_fk("approved_by", "staff"),
        UniqueConstraint("tenant_id", "month"),
        CheckConstraint("state IN ('draft', 'approved')", name="state"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    month: Mapped[str] = mapped_column(String(7))
    state: Mapped[str] = mapped_column(String(10), default="draft")  # draft, approved
    entries: Mapped[int] = mapped_column(BigInteger, default=0)
    earned_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    clawed_back_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    net_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_by: Mapped[str | None] = mapped_column(String(32))
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(32))


class CommissionStatement(Base):
    """Per guide or per store totals of a settled month, written set-based at close."""

    __tablename__ = "commission_statements"
    __table_args__ = (
        tenant_fk("store_id", "stores"),
        tenant_fk("settlement_id", "commission_settlements"),
        CheckConstraint("level IN ('guide', 'store')", name="level"),
        Index("ix_commission_statements_store", "store_id", "settlement_id"),
    )

    settlement_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    level: Mapped[str] = mapped_column(String(5), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # guide or store id
    tenant_id: Mapped[str] = tenant_column()
    month: Mapped[str] = mapped_column(String(7))
    store_id: Mapped[str] = mapped_column(String(32))
    entries: Mapped[int] = mapped_column(BigInteger)
    earned_fen: Mapped[int] = mapped_column(BigInteger)
    clawed_back_fen: Mapped[int] = mapped_column(BigInteger)
    net_fen: Mapped[int] = mapped_column(BigInteger)
