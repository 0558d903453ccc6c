"""Which members a segment names: the one filter campaigns and bulk coupon issues share.

A segment is {"tag_ids", "stages", "tiers", "birthday_month", "silent_days"} (and, for
internal callers, "member_ids"): members matched by every given criterion, tags by any of
them (members.schemas.SegmentSchema is its request shape)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from guideapp.members.models import Member, MemberTag, Tag
from guideapp.policy.actor import Actor
from guideapp.policy.references import resolve_ids

CRITERIA = ("tag_ids", "stages", "tiers", "birthday_month", "silent_days", "member_ids")


def segment_filter(segment: dict, now: datetime) -> ColumnElement[bool]:
    """Active members matched by every given criterion (tags: any of them)."""
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
    return any(segment.get(k) for k in CRITERIA)


def check_segment(session: Session, actor: Actor, segment: dict, *, field="segment") -> None:
    """The tags a segment names are the caller's to use, else 422 naming the field."""
    tag_ids = segment.get("tag_ids")
    resolve_ids(session, actor, Tag, tag_ids, field=f"{field}.tag_ids", what="tag", load=False)
