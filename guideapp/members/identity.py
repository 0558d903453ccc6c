"""Resolving a person to one member across channels, and creating one when none matches."""

from __future__ import annotations

from datetime import date, datetime
from typing import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from guideapp.db import utcnow
from guideapp.members.models import Member, MemberIdentity
from guideapp.phones import normalize_phone
from guideapp.changelog import log_change, staff_scope, store_scope, tenant_scope


def member_scopes(member: Member) -> list[str]:
    """Where a member's card replicates: its guide's phone and its store's managers."""
    scopes = []
    if member.guide_id:
        scopes.append(staff_scope(member.guide_id))
    if member.store_id:
        scopes.append(store_scope(member.store_id))
    return scopes or [tenant_scope(member.tenant_id)]


def log_member(
    session: Session,
    member: Member,
    *,
    old_scopes=(),
    table="members",
    record_id=None,
    deleted=False,
) -> None:
    log_change(
        session,
        tenant_id=member.tenant_id,
        table=table,
        record_id=record_id or member.id,
        scopes={*old_scopes, *member_scopes(member)},
        deleted=deleted,
    )


def follow_merges(session: Session, member: Member | None) -> Member | None:
    """A merged-away member keeps resolving to its survivor."""
    seen = set()
    while member is not None and member.merged_into_id and member.id not in seen:
        seen.add(member.id)
        member = session.get(Member, member.merged_into_id)
    return member


def resolve_member(
    session: Session,
    *,
    tenant_id: str,
    phone: str | None = None,
    unionid: str | None = None,
    identities: dict[str, str] | None = None,
):
    """The member matching any of phone, unionid or channel ids; phone wins on a split."""
    phone = normalize_phone(phone) if phone else None
    clauses = []
    if phone:
        clauses.append(Member.phone == phone)
    if unionid:
        clauses.append(Member.unionid == unionid)
    found: Sequence[Member] = []
    if clauses:
        found = session.scalars(
            select(Member).where(Member.tenant_id == tenant_id, or_(*clauses))
        ).all()
    if not found and identities:
        ids = session.scalars(
            select(MemberIdentity.member_id).where(
                MemberIdentity.tenant_id == tenant_id,
                or_(
                    *[
                        (MemberIdentity.kind == k) & (MemberIdentity.value == v)
                        for k, v in identities.items()
                    ]
                ),
            )
        ).all()
        found = [session.get_one(Member, i) for i in ids[:1]]
    found = sorted(found, key=lambda m: (m.phone != phone, m.created_at))
    return follow_merges(session, found[0]) if found else None


def create_member(
    session: Session,
    *,
    tenant_id: str,
    phone: str | None = None,
    unionid: str | None = None,
    name: str = "",
    source_channel: str,
    gender: str = "unknown",
    birthday: date | None = None,
    joined_at: datetime | None = None,
    tier: str = "normal",
    member_id: str | None = None,
) -> Member:
    phone = normalize_phone(phone) if phone else None
    member = Member(
        tenant_id=tenant_id,
        phone=phone,
        phone_tail=phone[-4:] if phone else None,
        unionid=unionid or None,
        name=name or "",
        gender=gender,
        birthday=birthday,
        birthday_mmdd=birthday.strftime("%m%d") if birthday else None,
        tier=tier,
        source_channel=source_channel,
        joined_at=joined_at or utcnow(),
        stage="fan" if unionid else "prospect",
    )
    if member_id:
        member.id = member_id
    session.add(member)
    session.flush()
    log_member(session, member)
    return member


def ensure_member(
    session: Session,
    *,
    tenant_id: str,
    source_channel: str,
    phone: str | None = None,
    unionid: str | None = None,
    identities: dict[str, str] | None = None,
    name: str = "",
) -> tuple[Member, bool]:
    """Payment is membership: find the person or create them. Returns (member, created)."""
    member = resolve_member(
        session, tenant_id=tenant_id, phone=phone, unionid=unionid, identities=identities
    )
    created = member is None
    if created:
        member = create_member(
            session,
            tenant_id=tenant_id,
            phone=phone,
            unionid=unionid,
            name=name,
            source_channel=source_channel,
        )
    else:
        _fill_missing_identity(session, member, phone=phone, unionid=unionid)
    for kind, value in (identities or {}).items():
        add_identity(session, member, kind=kind, value=value)
    return member, created


def add_identity(session: Session, member: Member, *, kind: str, value: str) -> None:
    exists = session.scalar(
        select(MemberIdentity.id).where(
            MemberIdentity.tenant_id == member.tenant_id,
            MemberIdentity.kind == kind,
            MemberIdentity.value == value,
        )
    )
    if not exists:
        session.add(
            MemberIdentity(tenant_id=member.tenant_id, member_id=member.id, kind=kind, value=value)
        )
        session.flush()


def _fill_missing_identity(session: Session, member: Member, *, phone, unionid) -> None:
    """Learn a phone or unionid the member did not have yet, unless another member owns it."""
    phone = normalize_phone(phone) if phone else None
    changed = False
    if phone and not member.phone and not _taken(session, member, Member.phone, phone):
        member.phone, member.phone_tail, changed = phone, phone[-4:], True
    if unionid and not member.unionid and not _taken(session, member, Member.unionid, unionid):
        member.unionid, changed = unionid, True
    if changed:
        session.flush()
        log_member(session, member)


def _taken(session: Session, member: Member, column, value) -> bool:
    return (
        session.scalar(
            select(Member.id).where(
                Member.tenant_id == member.tenant_id, column == value, Member.id != member.id
            )
        )
        is not None
    )


def log_member_dependants(session: Session, *, tenant_id: str, member_ids, scopes) -> None:
    """Notes, tags and orders replicate with their member: when the member moves between
    phones, so must they (set-based: one INSERT ... SELECT per table and scope), and so
    must what other domains replicate with the card (member_cards_moved)."""
    from sqlalchemy import String, literal

    from guideapp.members.models import MemberNote, MemberTag, Order
    from guideapp.members.signals import member_cards_moved
    from guideapp.changelog import log_changes_from_select

    for table, model in (
        ("member_notes", MemberNote),
        ("member_tags", MemberTag),
        ("orders", Order),
    ):
        for scope in scopes:
            log_changes_from_select(
                session,
                tenant_id=tenant_id,
                table=table,
                rows=select(model.id, literal(scope, String)).where(
                    model.member_id.in_(member_ids)
                ),
            )
    member_cards_moved.send(session, tenant_id=tenant_id, member_ids=member_ids, scopes=scopes)
