"""Offline edits the server did not apply, kept so nothing a guide did is lost."""

from datetime import datetime

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import BigIntId, Base, utcnow


class SyncRejection(Base):
    """A guide's offline edit the server did not apply, kept so nothing is silently lost."""

    __tablename__ = "sync_rejections"
    __table_args__ = (Index("ix_sync_rejections_staff", "staff_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(32))
    staff_id: Mapped[str] = mapped_column(String(32))
    table_name: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[str] = mapped_column(String(140))
    operation: Mapped[str] = mapped_column(String(10))  # created, updated, deleted
    reason: Mapped[str] = mapped_column(String(300))
    server_won: Mapped[bool] = mapped_column(default=False)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
