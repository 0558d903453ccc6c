"""专属导购: binding a member to a guide, the lock period, rebinding and bulk transfer."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence, cast

from sqlalchemy import and_, insert, select, update
from sqlalchemy.orm import Session

from guideapp import audit
from guideapp.db import new_id, utcnow
from guideapp.errors import Conflict, InvalidInput
from guideapp.members.identity import log_member, log_member_dependants, member_scopes
from guideapp.members.models import Binding, Member
from guideapp.members.signals import members_transferred
from guideapp.org.models import Staff, Tenant
from guideapp.changelog import log_changes, staff_scope, store_scope


def bind(
    session: Session,
    *,
    member: Member,
    guide: Staff,
    reason: str,
    by_staff_id: str | None = None,
    now: datetime | None = None,
    force=False,
) -> Binding | None:
    """Bind `member` to `guide`. Refused while another guide's lock runs, unless `force`
    (a manager's or HQ's transfer)."""
    now = now or utcnow()
    if guide.role != "guide" or guide.state != "active" or guide.tenant_id != member.tenant_id:
        raise InvalidInput(errors={"guide_id": ["Not an active guide of this brand group."]})
    if member.guide_id == guide.id:
        return current_binding(session, member)
    if (
        member.guide_id
        and not force
        and member.binding_locked_until
        and member.binding_locked_until > now
    ):
        raise Conflict(
            f"Member is bound to another guide until {member.binding_locked_until:%Y-%m-%d}.",
            errors={"member_id": ["Binding locked (导购会员锁)."]},
        )
    old_scopes = member_scopes(member)
    _end_open_binding(session, member.id, now)
    lock_days = session.execute(
        select(Tenant.binding_lock_days).where(Tenant.id == member.tenant_id)
    ).scalar_one()
    locked_until = now + timedelta(days=lock_days)
    binding = Binding(
        tenant_id=member.tenant_id,
        member_id=member.id,
        guide_id=guide.id,
        store_id=guide.store_id,
        reason=reason,
        started_at=now,
        locked_until=locked_until,
        by_staff_id=by_staff_id,
    )
    session.add(binding)
    member.guide_id, member.store_id = guide.id, guide.store_id
    member.bound_at, member.binding_locked_until = now, locked_until
    member.updated_at = now
    session.flush()
    log_member(session, member, old_scopes=old_scopes)
    log_member_dependants(
        session,
        tenant_id=member.tenant_id,
        member_ids=[member.id],
        scopes={*old_scopes, *member_scopes(member)},
    )
    return binding


def mark_lost(
    session: Session, *, member: Member, guide_id: str, at: datetime | None
) -> Binding | None:
    """The member removed `guide_id` from their contacts (`at`), or added them back (None).
    The binding stays: the member is still the guide's in our books (attribution, tasks)
    until someone moves them; the loss is what a win-back SOP rule looks for. Returns the
    running binding when it is that guide's."""
    binding = current_binding(session, member)
    if binding is None or binding.guide_id != guide_id or binding.lost_at == at:
        return binding if binding is not None and binding.guide_id == guide_id else None
    binding.lost_at = at
    session.flush()
    return binding


def current_binding(session: Session, member: Member) -> Binding | None:
    return session.scalar(
        select(Binding).where(Binding.member_id == member.id, Binding.ended_at.is_(None))
    )


def _end_open_binding(session: Session, member_id: str, now: datetime) -> None:
    session.execute(
        update(Binding)
        .where(Binding.member_id == member_id, Binding.ended_at.is_(None))
        .values(ended_at=now)
    )


def hand_over_book(session: Session, *, staff, successor, by_staff_id: str, **_ignored) -> None:
    """org.staff_signed_off with a successor: every member of the leaver moves to them."""
    if successor is not None:
        transfer_members(
            session,
            tenant_id=staff.tenant_id,
            from_guide=staff,
            to_guide=successor,
            member_ids=None,
            by_staff_id=by_staff_id,
        )


def transfer_members(
    session: Session,
    *,
    tenant_id: str,
    from_guide: Staff,
    to_guide: Staff,
    member_ids: list[str] | None,
    by_staff_id: str | None,
    now: datetime | None = None,
    reason: str = "transfer",
    returning: bool = False,
) -> dict:
    """Move members (all of `from_guide`'s, or the listed ones) in one set-based step.

    Bindings get a new `reason` row each (history kept); the lock restarts for the new
    guide. Open tasks and future commission attribution follow `members.guide_id`.
    `returning`: the members go back to a guide who keeps them after all (WeCom refused to
    hand the customers over), who may have left meanwhile, as after a sign-off without a
    successor.
    """
    now = now or utcnow()
    if to_guide.role != "guide" or (to_guide.state != "active" and not returning):
        raise InvalidInput(errors={"to_guide_id": ["Members can only move to an active guide."]})
    if to_guide.id == from_guide.id:
        raise InvalidInput(errors={"to_guide_id": ["Choose a different guide."]})
    chosen = and_(Member.tenant_id == tenant_id, Member.guide_id == from_guide.id)
    if member_ids is not None:
        chosen = and_(chosen, Member.id.in_(member_ids))
    ids = session.scalars(select(Member.id).where(chosen)).all()
    if member_ids is not None and len(ids) != len(set(member_ids)):
        raise InvalidInput(
            errors={"member_ids": ["Some members are not bound to the guide they are moved from."]}
        )
    if not ids and member_ids is not None:
        return {"transfer_id": None, "moved": 0}
    transfer_id = new_id()
    lock_days = session.execute(
        select(Tenant.binding_lock_days).where(Tenant.id == tenant_id)
    ).scalar_one()
    locked_until = now + timedelta(days=lock_days)
    for chunk in _chunks(ids, 5000):
        session.execute(
            update(Binding)
            .where(Binding.member_id.in_(chunk), Binding.ended_at.is_(None))
            .values(ended_at=now)
        )
        session.execute(
            insert(Binding),
            [
                {
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "member_id": mid,
                    "guide_id": to_guide.id,
                    "store_id": to_guide.store_id,
                    "reason": reason,
                    "started_at": now,
                    "locked_until": locked_until,
                    "by_staff_id": by_staff_id,
                    "transfer_id": transfer_id,
                }
                for mid in chunk
            ],
        )
        session.execute(
            update(Member)
            .where(Member.id.in_(chunk))
            .values(
                guide_id=to_guide.id,
                store_id=to_guide.store_id,
                bound_at=now,
                binding_locked_until=locked_until,
                updated_at=now,
            )
        )
    scopes = {
        staff_scope(from_guide.id),
        staff_scope(to_guide.id),
        # from_guide is not checked to be a guide: an HQ admin's None reads "store:None".
        store_scope(cast(str, from_guide.store_id)),
        store_scope(cast(str, to_guide.store_id)),  # an active guide: the store_staff check
    }
    log_changes(
        session,
        tenant_id=tenant_id,
        table="members",
        rows=[(mid, scope) for mid in ids for scope in scopes],
    )
    moved = select(Binding.member_id).where(Binding.transfer_id == transfer_id)
    log_member_dependants(session, tenant_id=tenant_id, member_ids=moved, scopes=scopes)
    members_transferred.send(  # tasks and other domains follow the members
        session,
        tenant_id=tenant_id,
        member_ids=ids,
        from_guide=from_guide,
        to_guide=to_guide,
        now=now,
        whole_book=member_ids is None,
    )
    audit.record(
        session,
        tenant_id=tenant_id,
        staff_id=by_staff_id,
        action="members.transferred",
        target_kind="staff",
        target_id=to_guide.id,
        details={"from": from_guide.id, "moved": len(ids), "reason": reason},
        at=now,
    )
    session.expire_all()
    return {"transfer_id": transfer_id, "moved": len(ids)}


def _chunks(items: Sequence, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]
