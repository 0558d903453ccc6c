"""A WeCom customer of one of our guides, in our books: the member (found by unionid or
by the identity `wecom:<corp id>` = external_userid, created when neither matches), the
relationship (WecomContact), the binding and the code's tags. Shared by the add events
(handlers/contacts.py) and the onboarding sync (customer_sync.py); what only an add does
(recruitment, the welcome) stays with the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from guideapp.db import utcnow
from guideapp.members import binding as bindings
from guideapp.members.identity import ensure_member, resolve_member
from guideapp.members.models import Member, Tag
from guideapp.members.tags import tag_member
from guideapp.org.models import Staff
from guideapp.scans.models import ScanCode
from guideapp.wecom.models import WecomContact, WecomContactWay

SOURCE_CHANNEL = "wecom"


def identity_kind(corp_id: str) -> str:
    return f"wecom:{corp_id}"


@dataclass
class Customer:
    """What WeCom says of one customer as one user follows them (externalcontact/get's
    external_contact + that user's follow_user entry, or one batch/get_by_user row)."""

    external_userid: str
    name: str = ""
    unionid: str | None = None
    remark: str = ""
    state: str | None = None
    added_at: datetime | None = None  # follow createtime

    @classmethod
    def of(cls, external_contact: dict, follow: dict | None) -> Customer:
        follow = follow or {}
        created = follow.get("createtime")
        return cls(
            external_userid=external_contact.get("external_userid") or "",
            name=str(external_contact.get("name") or "")[:60],
            unionid=external_contact.get("unionid") or None,
            remark=str(follow.get("remark") or "")[:100],
            state=follow.get("state") or None,
            added_at=datetime.fromtimestamp(int(created), tz=timezone.utc) if created else None,
        )


@dataclass
class Recorded:
    member: Member
    contact: WecomContact
    guide: Staff | None  # the staff with that WeCom user id (None: not mapped yet)
    way: WecomContactWay | None  # the contact way `state` names (None: no attribution)
    code: ScanCode | None
    member_created: bool
    contact_created: bool
    reopened: bool  # the contact had ended (deleted) and is active again
    was_unbound: bool  # the member had no guide before
    bound: bool  # this call bound the member to `guide`


def guide_of(session: Session, tenant_id: str, userid: str) -> Staff | None:
    return session.scalar(
        select(Staff).where(Staff.tenant_id == tenant_id, Staff.wecom_userid == userid)
    )


def way_of(session: Session, tenant_id: str, state: str | None) -> WecomContactWay | None:
    """The tenant's contact way a callback's State names. Another tenant's state, or one
    that names nothing, attributes nothing (the state is unique per tenant only)."""
    if not state:
        return None
    return session.scalar(
        select(WecomContactWay).where(
            WecomContactWay.tenant_id == tenant_id, WecomContactWay.state == state[:30]
        )
    )


def find_contact(
    session: Session, tenant_id: str, userid: str, external_userid: str
) -> WecomContact | None:
    return session.scalar(
        select(WecomContact).where(
            WecomContact.tenant_id == tenant_id,
            WecomContact.userid == userid,
            WecomContact.external_userid == external_userid,
        )
    )


def record(
    session: Session,
    *,
    tenant_id: str,
    corp_id: str,
    userid: str,
    customer: Customer,
    state: str | None,
    added_at: datetime,
    take_over_unlocked: bool,
) -> Recorded:
    """Find or create the member and the relationship; bind to the guide when the member
    has none (or, with `take_over_unlocked`, when another guide's lock has run out: the
    customer chose this guide in WeCom); write the tags of the code `state` names."""
    guide = guide_of(session, tenant_id, userid)
    way = way_of(session, tenant_id, state)
    code = session.get(ScanCode, way.code_id) if way is not None and way.code_id else None
    member, created = _member(session, tenant_id, corp_id, customer)
    was_unbound = member.guide_id is None
    contact, contact_created, reopened = _contact(
        session,
        tenant_id=tenant_id,
        member=member,
        guide=guide,
        userid=userid,
        customer=customer,
        way=way,
        state=state,
        added_at=added_at,
    )
    bound = False
    if guide is not None and guide.role == "guide" and guide.state == "active":
        bound = _bind(session, member, guide, created=created, take_over=take_over_unlocked)
        bindings.mark_lost(session, member=member, guide_id=guide.id, at=None)
    if code is not None:
        _write_tags(session, code=code, member=member)
    return Recorded(
        member, contact, guide, way, code, created, contact_created, reopened, was_unbound, bound
    )


def _member(
    session: Session, tenant_id: str, corp_id: str, customer: Customer
) -> tuple[Member, bool]:
    identities = {identity_kind(corp_id): customer.external_userid}
    try:
        # Two events of one new customer (adding two guides) may race: one member.
        with session.begin_nested():
            member, created = ensure_member(
                session,
                tenant_id=tenant_id,
                source_channel=SOURCE_CHANNEL,
                unionid=customer.unionid,
                identities=identities,
                name=customer.name,
            )
    except IntegrityError:
        found = resolve_member(
            session, tenant_id=tenant_id, unionid=customer.unionid, identities=identities
        )
        if found is None:
            raise
        member, created = found, False
    if not created and not member.name and customer.name:
        member.name = customer.name
        session.flush()
    return member, created


def _contact(
    session: Session,
    *,
    tenant_id: str,
    member: Member,
    guide: Staff | None,
    userid: str,
    customer: Customer,
    way: WecomContactWay | None,
    state: str | None,
    added_at: datetime,
) -> tuple[WecomContact, bool, bool]:
    contact = find_contact(session, tenant_id, userid, customer.external_userid)
    if contact is None:
        try:
            with session.begin_nested():
                contact = WecomContact(
                    tenant_id=tenant_id,
                    member_id=member.id,
                    guide_id=guide.id if guide is not None else None,
                    userid=userid,
                    external_userid=customer.external_userid,
                    contact_way_id=way.id if way is not None else None,
                    state=(state or None) and state[:30],
                    status="active",
                    remark=customer.remark or None,
                    added_at=added_at,
                )
                session.add(contact)
                session.flush()
            return contact, True, False
        except IntegrityError:
            contact = find_contact(session, tenant_id, userid, customer.external_userid)
            if contact is None:
                raise
    reopened = contact.status != "active"
    if reopened:  # they are back: a new relationship on the same row
        contact.status, contact.ended_at, contact.added_at = "active", None, added_at
        contact.contact_way_id = way.id if way is not None else None
        contact.state = (state or None) and state[:30]
    contact.member_id = member.id
    if guide is not None:
        contact.guide_id = guide.id
    if customer.remark:
        contact.remark = customer.remark
    session.flush()
    return contact, False, reopened


def _bind(session: Session, member: Member, guide: Staff, *, created: bool, take_over: bool):
    if member.guide_id == guide.id:
        return False
    if member.guide_id is not None:
        locked = member.binding_locked_until is not None and member.binding_locked_until > utcnow()
        if locked or not take_over:
            return False
    reason = "recruited" if created else ("wecom" if member.guide_id is None else "rebind")
    bindings.bind(session, member=member, guide=guide, reason=reason)
    return True


def _write_tags(session: Session, *, code: ScanCode, member: Member) -> None:
    """The code's tags, as a scan of it writes them (scans.service._write_tags)."""
    if not code.tag_ids:
        return
    tags = session.scalars(
        select(Tag).where(Tag.tenant_id == code.tenant_id, Tag.id.in_(code.tag_ids))
    ).all()
    for tag in tags:
        tag_member(
            session,
            actor=None,
            member=member,
            tag=tag,
            source="wecom_channel",
            source_ref=code.code,
        )
