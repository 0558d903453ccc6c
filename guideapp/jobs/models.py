"""Our record of every job: who started it, its state, progress, result and failure."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, tenant_column, new_id, tenant_fk, utcnow

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")


class Job(Base):
    """One named piece of long work. The queue (huey) only carries the job's id: this row
    is the truth about it, written in the same transaction as each checkpoint's work."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="state"
        ),
        # Enqueueing with the same Idempotency-Key enqueues once, per tenant and starter.
        UniqueConstraint("tenant_id", "started_by", "idempotency_key"),
        Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        Index("ix_jobs_started_by", "started_by", "created_at"),
        Index("ix_jobs_store_created", "store_id", "created_at"),
        # The subject's active job (one publish of a campaign at a time), and recovery.
        Index("ix_jobs_subject", "tenant_id", "subject", "state"),
        Index("ix_jobs_state_heartbeat", "state", "heartbeat_at"),
        # The starter and their store are of the job's tenant, and the database says so.
        tenant_fk("started_by", "staff"),
        tenant_fk("store_id", "stores"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    started_by: Mapped[str | None] = mapped_column(String(32))  # NULL: cron / CLI
    store_id: Mapped[str | None] = mapped_column(String(32))  # the starter's
    kind: Mapped[str] = mapped_column(String(64))  # e.g. campaign.publish
    subject: Mapped[str | None] = mapped_column(String(100))  # e.g. campaign:<id>, month:2026-11
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(10), default="queued")
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int | None]
    progress_unit: Mapped[str] = mapped_column(String(20), default="items")
    # Where the next unit of work starts; written with each unit's work, in its transaction.
    checkpoint: Mapped[dict] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=5)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)  # for people: what went wrong, what to do
    error_detail: Mapped[str | None] = mapped_column(Text)  # traceback: server-side only
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # The last sign of life (a checkpoint), or when a scheduled retry is due: a job queued or
    # running with no sign of life for the lease is re-enqueued (its worker died).
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def progress(self) -> dict:
        return {
            "done": self.progress_done,
            "total": self.progress_total,
            "unit": self.progress_unit,
        }
