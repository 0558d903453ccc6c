"""Merging duplicate members: everything moves to the survivor, nothing is lost or doubled."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from guideapp import audit, policy
from guideapp.policy.references import resolve_id
from guideapp.policy.actor import Actor
from guideapp.db import utcnow
from guideapp.errors import InvalidInput, InvalidState
from guideapp.members.identity import log_member, log_member_dependants, member_scopes
from guideapp.members.lifecycle import recompute_stage
from guideapp.members.models import (
    TIERS,
    Binding,
    Member,
    MemberIdentity,
    MemberMerge,
    MemberNote,
    MemberTag,
    Order,
    PointsEntry,
)
from guideapp.members.signals import members_merged


def merge_members(session: Session, *, actor: Actor, survivor_id: str, merged_id: str) -> dict:
    survivor = policy.get_writable(session, actor, Member, survivor_id, "merge")
    merged = resolve_id(session, actor, Member, merged_id, field="merged_id")
    policy.require_write(actor, merged, "merge")
    if survivor.id == merged.id:
        raise InvalidInput(errors={"merged_id": ["A member cannot be merged into itself."]})
    if survivor.state != "active" or merged.state != "active":
        raise InvalidState("Both members must be active (not merged already).")
    now = utcnow()
    merged_scopes = member_scopes(merged)
    moved = {
        "orders": _move(session, Order, merged, survivor),
        "points_entries": _move(session, PointsEntry, merged, survivor),
        "notes": _move(session, MemberNote, merged, survivor),
        "identities": _move(session, MemberIdentity, merged, survivor),
        "tags": _move_tags(session, merged, survivor),
    }
    moved["bindings"] = _merge_bindings(session, merged, survivor, now)
    _carry_profile(session, merged, survivor)
    merged.state, merged.merged_into_id, merged.updated_at = "merged", survivor.id, now
    # Domains holding member-linked rows (task targets, commission ledger) move them and
    # answer with their moved counts.
    for _receiver, counts in members_merged.send(session, survivor=survivor, merged=merged):
        moved.update(counts or {})
    recompute_stage(session, survivor, now)
    survivor.updated_at = now
    session.add(
        MemberMerge(
            tenant_id=actor.tenant_id,
            survivor_id=survivor.id,
            merged_id=merged.id,
            by_staff_id=actor.staff_id,
            moved=moved,
        )
    )
    audit.record(
        session,
        tenant_id=actor.tenant_id,
        staff_id=actor.staff_id,
        action="members.merged",
        target_kind="member",
        target_id=survivor.id,
        details={"merged_id": merged.id},
    )
    session.flush()
    log_member(session, merged, old_scopes=merged_scopes, deleted=True)
    log_member(session, survivor, old_scopes=merged_scopes)
    log_member_dependants(  # the survivor's card parts, old ones and moved ones, set-based
        session,
        tenant_id=survivor.tenant_id,
        member_ids=[survivor.id],
        scopes={*merged_scopes, *member_scopes(survivor)},
    )
    return {"survivor_id": survivor.id, "merged_id": merged.id, "moved": moved}


def _move(session: Session, model, merged: Member, survivor: Member) -> int:
    result = session.execute(
        update(model).where(model.member_id == merged.id).values(member_id=survivor.id)
    )
    return cast(CursorResult[Any], result).rowcount


def _move_tags(session: Session, merged: Member, survivor: Member) -> int:
    """Union of tags: the survivor keeps its own rows, gains the ones it lacked."""
    have = select(MemberTag.tag_id).where(MemberTag.member_id == survivor.id)
    session.execute(
        delete(MemberTag).where(MemberTag.member_id == merged.id, MemberTag.tag_id.in_(have))
    )
    result = session.execute(
        update(MemberTag).where(MemberTag.member_id == merged.id).values(member_id=survivor.id)
    )
    return cast(CursorResult[Any], result).rowcount


def _merge_bindings(session: Session, merged: Member, survivor: Member, now) -> int:
    """History moves; the survivor keeps its guide, or takes the merged member's."""
    if survivor.guide_id is None and merged.guide_id is not None:
        survivor.guide_id, survivor.store_id = merged.guide_id, merged.store_id
        survivor.bound_at = merged.bound_at
        survivor.binding_locked_until = merged.binding_locked_until
    elif merged.guide_id is not None:
        session.execute(
            update(Binding)
            .where(Binding.member_id == merged.id, Binding.ended_at.is_(None))
            .values(ended_at=now)
        )
    merged.guide_id = merged.store_id = merged.binding_locked_until = None
    return _move(session, Binding, merged, survivor)


def _carry_profile(session: Session, merged: Member, survivor: Member) -> None:
    phone, unionid = merged.phone, merged.unionid
    merged.phone = merged.phone_tail = merged.unionid = None  # free the unique keys first
    session.flush()
    if not survivor.phone and phone:
        survivor.phone, survivor.phone_tail = phone, phone[-4:]
    if not survivor.unionid and unionid:
        survivor.unionid = unionid
    if not survivor.name and merged.name:
        survivor.name = merged.name
    if survivor.birthday is None and merged.birthday is not None:
        survivor.birthday, survivor.birthday_mmdd = merged.birthday, merged.birthday_mmdd
    if TIERS.index(merged.tier) > TIERS.index(survivor.tier):
        # The person reached that tier when the merged record did: no new occasion.
        survivor.tier, survivor.tier_since = merged.tier, merged.tier_since
    survivor.joined_at = min(survivor.joined_at, merged.joined_at)
    if merged.last_order_at and (
        not survivor.last_order_at or merged.last_order_at > survivor.last_order_at
    ):
        survivor.last_order_at = merged.last_order_at
