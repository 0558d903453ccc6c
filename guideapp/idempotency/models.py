"""Stored first responses of POSTs sent with an Idempotency-Key."""

from datetime import datetime

from sqlalchemy import Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, new_id, utcnow


class IdempotentRequest(Base):
    __tablename__ = "idempotent_requests"
    __table_args__ = (
        UniqueConstraint("owner", "key"),
        Index("ix_idempotent_requests_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(64))  # staff id, or anon:<address>
    key: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
