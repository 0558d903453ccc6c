"""The change log every write appends to, and the per-tenant commit-order counter."""
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class SyncCounter(Base):
    """One row per tenant; every writing transaction bumps it just before committing.

    The row lock is held until commit, so counter order is commit order: a pull that
    reads counter N has seen every change stamped <= N (SYNC.md rule 1).
    """

    __tablename__ = "sync_counters"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=1)
    # Change-log rows below this were pruned: older cursors get a full replacement.
    oldest_kept_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class ChangeLogEntry(Base):
    """A record of `table_name` changed in `scope` at sequence `seq` (tombstones included)."""

    __tablename__ = "change_log"
    __table_args__ = (
        Index("ix_change_log_scope_seq", "tenant_id", "scope", "seq"),
        Index("ix_change_log_record", "tenant_id", "table_name", "record_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    scope: Mapped[str] = mapped_column(String(40))  # t:<tenant> r:<region> s:<store> g:<staff>
    table_name: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[str] = mapped_column(String(140))
    deleted: Mapped[bool] = mapped_column(default=False)


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
