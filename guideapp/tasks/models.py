"""Campaigns, tasks and their member targets, SOP rules, calendar items, scheduler runs."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, new_id, tenant_column, tenant_fk, utcnow

TASK_RESULTS = ("done", "unreachable", "declined")
TARGET_RESULTS = ("done", "unreachable", "declined", "converted")
SOP_TRIGGERS = (
    "member_joined",
    "first_order",
    "birthday",
    "silent",
    "points_expiring",
    "contact_lost",  # the member removed their guide from their contacts (win-back)
    "coupon_expiring",  # an available coupon's last day; params.template_id may narrow it
)


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        tenant_fk("created_by", "staff"),
        CheckConstraint("state IN ('draft', 'published', 'cancelled')", name="state"),
        Index("ix_campaigns_tenant_id", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    title: Mapped[str] = mapped_column(String(120))
    brief: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime]
    due_at: Mapped[datetime]
    suggested_material_id: Mapped[str | None] = mapped_column(String(64))
    suggested_reply_id: Mapped[str | None] = mapped_column(String(64))
    # {"all": true} | {"region_ids": [...], "store_tags": [...], "store_ids": [...]}
    target: Mapped[dict] = mapped_column(JSON, default=dict)
    # {"tag_ids": [...], "stages": [...], "birthday_month": 5} or {} for no member targets
    segment: Mapped[dict] = mapped_column(JSON, default=dict)
    distribution: Mapped[str] = mapped_column(String(10), default="manager")  # or "auto"
    state: Mapped[str] = mapped_column(String(10), default="draft")
    created_by: Mapped[str] = mapped_column(String(32))
    published_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    """One inbox item. `dedupe_key` makes generating the same task twice impossible."""

    __tablename__ = "tasks"
    __table_args__ = (
        tenant_fk("store_id", "stores"),
        tenant_fk("campaign_id", "campaigns"),
        tenant_fk("created_by", "staff"),
        tenant_fk("completed_by", "staff"),
        tenant_fk("assignee_id", "staff"),
        UniqueConstraint("tenant_id", "dedupe_key"),
        CheckConstraint("state IN ('open', 'done', 'cancelled')", name="state"),
        Index("ix_tasks_assignee_state_due", "assignee_id", "state", "due_at"),
        Index("ix_tasks_store_state_due", "store_id", "state", "due_at"),
        Index("ix_tasks_campaign_id", "campaign_id"),
    )

    id: Mapped[str] = mapped_column(String(100), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    store_id: Mapped[str] = mapped_column(String(32))
    assignee_id: Mapped[str | None] = mapped_column(String(32))  # NULL: claimable
    source: Mapped[str] = mapped_column(String(10))  # campaign, sop, store, calendar
    campaign_id: Mapped[str | None] = mapped_column(String(32))
    sop_rule_id: Mapped[str | None] = mapped_column(String(32))
    calendar_item_id: Mapped[str | None] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(120))
    brief: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime]
    due_at: Mapped[datetime]
    suggested_material_id: Mapped[str | None] = mapped_column(String(64))
    suggested_reply_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10), default="open")  # open, done, cancelled
    result: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    proof_url: Mapped[str | None] = mapped_column(String(500))
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(32))
    done_at_client: Mapped[datetime | None]  # the phone's clock: a fact, never an ordering
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TaskTarget(Base):
    """A member a task names, with its own result.

    No foreign keys to tasks, members or tenants: a campaign writes 300,000 targets at once,
    and each key check row-locks its parent (FOR KEY SHARE), rewriting every member page in
    the tenant (measured: 22 s of a 28 s fan-out). Every insert selects its task and member
    in the same statement, and tasks and members are never deleted (cancelled / merged).
    Those selects keep the tenant: the task and the member come from the campaign's tenant.
    `result_by` keeps its (tenant-scoped) key: it is NULL when a fan-out writes the row, so
    nothing is checked or locked then.
    """

    __tablename__ = "task_targets"
    __table_args__ = (
        tenant_fk("result_by", "staff"),
        UniqueConstraint("task_id", "member_id", "tenant_id"),
        Index("ix_task_targets_member_id", "member_id"),
    )

    id: Mapped[str] = mapped_column(String(140), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column(references_tenants=False)
    task_id: Mapped[str] = mapped_column(String(100))
    member_id: Mapped[str] = mapped_column(String(32))
    result: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    result_at: Mapped[datetime | None]
    result_by: Mapped[str | None] = mapped_column(String(32))
    done_at_client: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SopRule(Base):
    """'371': trigger member_joined, offsets day 3 / 7 / 30, sent in business hours."""

    __tablename__ = "sop_rules"
    __table_args__ = (
        Index("ix_sop_rules_tenant_id", "tenant_id"),
        tenant_fk("created_by", "staff"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    name: Mapped[str] = mapped_column(String(120))
    trigger: Mapped[str] = mapped_column(String(20))
    params: Mapped[dict] = mapped_column(JSON, default=dict)  # e.g. {"silent_days": 60}
    # [{"days": 3, "title": "第3天回访", "brief": "...", "due_days": 1}, ...]
    steps: Mapped[list] = mapped_column(JSON, default=list)
    window_start: Mapped[str] = mapped_column(String(5), default="10:00")  # tenant's zone
    window_end: Mapped[str] = mapped_column(String(5), default="21:00")
    suggested_material_id: Mapped[str | None] = mapped_column(String(64))
    suggested_reply_id: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CalendarItem(Base):
    """营销日历: what goes out on a given day, to which stores."""

    __tablename__ = "calendar_items"
    __table_args__ = (
        Index("ix_calendar_items_tenant_day", "tenant_id", "day"),
        tenant_fk("created_by", "staff"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    day: Mapped[date] = mapped_column(Date)
    title: Mapped[str] = mapped_column(String(120))
    brief: Mapped[str] = mapped_column(Text, default="")
    material_id: Mapped[str | None] = mapped_column(String(64))
    reply_id: Mapped[str | None] = mapped_column(String(64))
    coupon: Mapped[str | None] = mapped_column(String(120))
    community_groups: Mapped[str | None] = mapped_column(String(200))
    target: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchedulerRun(Base):
    """What each tick did; the newest run's `through_day` is where catch-up starts."""

    __tablename__ = "scheduler_runs"
    __table_args__ = (Index("ix_scheduler_runs_tenant_started", "tenant_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    from_day: Mapped[date] = mapped_column(Date)
    through_day: Mapped[date] = mapped_column(Date)
    created: Mapped[dict] = mapped_column(JSON, default=dict)
