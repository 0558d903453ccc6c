"""One audit entry per sensitive act."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, tenant_column, new_id, tenant_fk, utcnow

ACTIONS = (
    "members.export",
    "members.phones_viewed",
    "members.merged",
    "members.transferred",
    "commissions.export",
    "coupons.export",
    "staff.role_changed",
    "staff.password_reset",
)


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    __table_args__ = (
        tenant_fk("staff_id", "staff"),
        Index("ix_audit_entries_tenant_at", "tenant_id", "at", "id"),
        Index("ix_audit_entries_staff_id", "staff_id", "at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    staff_id: Mapped[str | None] = mapped_column(String(32))  # None: the CLI or a job
    action: Mapped[str] = mapped_column(String(40))
    target_kind: Mapped[str | None] = mapped_column(String(30))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict] = mapped_column(JSON, default=dict)  # counts and ids, never phones
    at: Mapped[datetime] = mapped_column(default=utcnow)
