"""The change log every write appends to, and the per-tenant commit-order counter."""

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import BigIntId, Base


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
