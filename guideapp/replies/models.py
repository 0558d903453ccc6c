"""Reply categories, quick replies and the member tags each reply applies to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guideapp.db import Base, new_id, tenant_column, tenant_fk, utcnow

SCENES = ("greeting", "ice_breaking", "product_advice", "after_sales", "win_back", "custom")
LEVELS = ("hq", "store", "personal")


class ReplyCategory(Base):
    """A folder of replies within a scene; HQ's (store_id NULL) or one store's."""

    __tablename__ = "reply_categories"
    __table_args__ = (
        tenant_fk("store_id", "stores"),
        CheckConstraint(
            "scene IN ('greeting', 'ice_breaking', 'product_advice', 'after_sales', "
            "'win_back', 'custom')",
            name="scene",
        ),
        Index("ix_reply_categories_tenant_id", "tenant_id", "scene"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    store_id: Mapped[str | None] = mapped_column(String(32))
    scene: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(60))
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QuickReply(Base):
    """A script. `updated_at` and `version` move on edits only, never on a render."""

    __tablename__ = "quick_replies"
    __table_args__ = (
        tenant_fk("owner_staff_id", "staff"),
        tenant_fk("owner_store_id", "stores"),
        tenant_fk("category_id", "reply_categories"),
        tenant_fk("created_by", "staff"),
        CheckConstraint("level IN ('hq', 'store', 'personal')", name="level"),
        CheckConstraint(
            "(level = 'hq' AND owner_store_id IS NULL AND owner_staff_id IS NULL) OR "
            "(level = 'store' AND owner_store_id IS NOT NULL AND owner_staff_id IS NULL) OR "
            "(level = 'personal' AND owner_store_id IS NULL AND owner_staff_id IS NOT NULL)",
            name="owner",
        ),
        CheckConstraint("usage_count >= 0", name="usage_count"),
        Index("ix_quick_replies_tenant_usage", "tenant_id", "usage_count", "id"),
        Index("ix_quick_replies_owner_store_id", "owner_store_id"),
        Index("ix_quick_replies_owner_staff_id", "owner_staff_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = tenant_column()
    level: Mapped[str] = mapped_column(String(10))
    owner_store_id: Mapped[str | None] = mapped_column(String(32))
    owner_staff_id: Mapped[str | None] = mapped_column(String(32))
    scene: Mapped[str] = mapped_column(String(20))
    category_id: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    tag_ids: Mapped[list] = mapped_column(JSON, default=list)  # mirrors quick_reply_tags
    tagged: Mapped[bool] = mapped_column(default=False)  # tag_ids not empty: an indexable flag
    usage_count: Mapped[int] = mapped_column(default=0)
    version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class QuickReplyTag(Base):
    """Reply x member tag, so "replies for this member's tags" is one indexed join."""

    __tablename__ = "quick_reply_tags"
    __table_args__ = (
        Index("ix_quick_reply_tags_tag_id", "tag_id", "reply_id"),
        tenant_fk("tag_id", "tags"),
        tenant_fk("reply_id", "quick_replies", ondelete="CASCADE"),
    )

    reply_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = tenant_column()
