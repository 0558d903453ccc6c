"""Which stores a campaign or calendar item reaches, and which members a segment names."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select

from guideapp.members.models import Member, MemberTag
from guideapp.org.models import Store, StoreTag


def target_stores(tenant_id: str, target: dict) -> Select:
    """Open stores of the tenant matched by {"all"} or any of region_ids / store_tags / ids."""
    stmt = select(Store.id).where(Store.tenant_id == tenant_id, Store.state == "open")
    if target.get("all"):
        return stmt
    clauses = []
    if target.get("region_ids"):
        clauses.append(Store.region_id.in_(target["region_ids"]))
    if target.get("store_tags"):
        clauses.append(
            Store.id.in_(
                select(StoreTag.store_id).where(
                    StoreTag.tenant_id == tenant_id, StoreTag.tag.in_(target["store_tags"])
                )
            )
        )
    if target.get("store_ids"):
        clauses.append(Store.id.in_(target["store_ids"]))
    return stmt.where(or_(*clauses) if clauses else false())


def segment_filter(segment: dict, now: datetime) -> ColumnElement[bool]:
    """Members matched by every given criterion (tags: any of them)."""
    clauses = [Member.state == "active"]
    if segment.get("tag_ids"):
        clauses.append(
            Member.id.in_(
                select(MemberTag.member_id).where(MemberTag.tag_id.in_(segment["tag_ids"]))
            )
        )
    if segment.get("stages"):
        clauses.append(Member.stage.in_(segment["stages"]))
    if segment.get("tiers"):
        clauses.append(Member.tier.in_(segment["tiers"]))
    if segment.get("birthday_month"):
        month = f"{segment['birthday_month']:02d}"
        clauses.append(Member.birthday_mmdd.between(month + "01", month + "31"))
    if segment.get("silent_days"):
        cutoff = now - timedelta(days=segment["silent_days"])
        clauses.append(func.coalesce(Member.last_order_at, Member.joined_at) < cutoff)
    if segment.get("member_ids"):
        clauses.append(Member.id.in_(segment["member_ids"]))
    return and_(*clauses)


def has_segment(segment: dict | None) -> bool:
    if not segment:
        return False
    return any(
        segment.get(k)
        for k in ("tag_ids", "stages", "tiers", "birthday_month", "silent_days", "member_ids")
    )
