"""The public scan: route the consumer, write the code's tags, recruit, record the scan."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from guideapp.db import new_id, utcnow
from guideapp.errors import DomainError, InvalidInput, NotFound
from guideapp.members import binding as bindings
from guideapp.members.signals import member_recruited
from guideapp.members.identity import ensure_member, resolve_member
from guideapp.members.models import Member, Tag
from guideapp.members.tags import tag_member
from guideapp.org import hours
from guideapp.org.geo import to_gcj02
from guideapp.org.models import Staff, Tenant
from guideapp.phones import normalize_phone
from guideapp.scans.models import Scan, ScanCode
from guideapp.scans.routing import Destination, choose_guide, resolve
from guideapp.scans.signals import scan_resolved
from guideapp.wechat import service as wechat
from guideapp.wechat.service import WechatIdentity


class CodeGone(DomainError):
    """An expired or switched-off code. The refused scan is still recorded (keep_writes)."""

    status = 410
    default_message = "This code is no longer valid."
    keep_writes = True


class CodeNotYetValid(DomainError):
    status = 403
    default_message = "This code is not valid yet."
    keep_writes = True


def scan(
    session: Session,
    *,
    code: str,
    lat: float | None = None,
    lng: float | None = None,
    coord_system: str = "wgs84",
    oauth_code: str | None = None,
    login_code: str | None = None,
    phone_code: str | None = None,
    lead_phone: str | None = None,
    client_address: str | None = None,
    now: datetime | None = None,
) -> dict:
    """Resolve a scan to a store and guide; identify (by what WeChat vouches for), tag and
    (when new) recruit the member. Anonymous scans are routed and recorded only."""
    now = now or utcnow()
    found = _code_and_zone(session, code)
    if found is None:
        raise NotFound(
            "Unknown code: check the QR code and scan again.", errors={"code": ["No such code."]}
        )
    record, zone = found
    # The schema sends lat and lng together, or neither.
    position = None if lat is None else to_gcj02(lat, cast(float, lng), coord_system)
    row = Scan(
        id=new_id(),
        tenant_id=record.tenant_id,
        code_id=record.id,
        channel=record.channel,
        lat=position and position[0],
        lng=position and position[1],
        coord_system=coord_system if position else None,
        client_address=client_address,
        scanned_at=now,
        scanned_on=now.astimezone(ZoneInfo(zone)).date(),
    )
    _check_validity(session, record, row, now)
    if lead_phone is not None:
        row.lead_phone = normalize_phone(lead_phone)
        if row.lead_phone is None:
            raise InvalidInput(errors={"lead_phone": ["Not a mainland mobile number (11 digits)."]})
    # Codes are exchanged before anything is written: a refused or failed exchange (422,
    # 503) rolls the request back whole, and WeChat will not take the same code twice.
    identity, phone = _vouched(
        session,
        record.tenant_id,
        oauth_code=oauth_code,
        login_code=login_code,
        phone_code=phone_code,
    )

    destination = resolve(session, code=record, position=position)
    member, created = _identify(session, record.tenant_id, phone=phone, identity=identity)
    guide = destination.guide
    if guide is None and destination.store is not None:
        guide = choose_guide(
            session,
            tenant_id=record.tenant_id,
            store_id=destination.store.id,
            bound_guide_id=member.guide_id if member else None,
        )
    bound = False
    if member is not None:
        bound = _bind(session, code=record, member=member, guide=guide, created=created, now=now)
        _write_tags(session, code=record, member=member)

    row.outcome = destination.resolution
    row.store_id = destination.store.id if destination.store is not None else None
    row.guide_id = guide.id if guide is not None else None
    row.distance_m = destination.distance_m
    row.member_id = member.id if member is not None else None
    row.member_created, row.bound = created, bound
    session.add(row)
    answer = _answer(row, record, destination, guide, local=now.astimezone(ZoneInfo(zone)))
    answer["wecom_qr_code"] = answer["coupon"] = None
    for _receiver, extra in scan_resolved.send(
        session,
        code=record,
        resolution=destination.resolution,
        store_id=row.store_id,
        guide_id=row.guide_id,
        member_id=row.member_id,
    ):
        answer.update(extra or {})
    return answer


def code_state(record: ScanCode, now: datetime) -> str:
    """'active', or why a scan of it is refused: 'inactive', 'expired', 'not_yet_valid'."""
    if not record.active:
        return "inactive"
    if record.valid_until is not None and record.valid_until <= now:
        return "expired"
    if record.valid_from is not None and record.valid_from > now:
        return "not_yet_valid"
    return "active"


def landing_code(session: Session, code: str, now: datetime | None = None) -> dict | None:
    """What the landing page needs before it asks for a position (None: unknown code)."""
    found = _code_and_zone(session, code)
    if found is None:
        return None
    record, zone = found
    until = record.valid_until
    return {
        "record": record,
        "code": record.code,
        "kind": record.kind,
        "state": code_state(record, now or utcnow()),
        "fallback_url": record.fallback_url,
        "valid_until_local": until.astimezone(ZoneInfo(zone)).date() if until else None,
    }


def _code_and_zone(session: Session, code: str) -> tuple[ScanCode, str] | None:
    """The code and its tenant's time zone (calendar rules: validity, opening hours)."""
    found = session.execute(
        select(ScanCode, Tenant.timezone)
        .join(Tenant, Tenant.id == ScanCode.tenant_id)
        .where(ScanCode.code == code)
    ).first()
    return (found[0], found[1]) if found is not None else None


def tenant_of_code(session: Session, code: str) -> str:
    """The tenant whose code this is (public pages: the JS-SDK signature); 404 if none."""
    tenant_id = session.scalar(select(ScanCode.tenant_id).where(ScanCode.code == code))
    if tenant_id is None:
        raise NotFound("Unknown code.", errors={"code": ["No such code."]})
    return tenant_id


def _check_validity(session: Session, record: ScanCode, row: Scan, now: datetime) -> None:
    state = code_state(record, now)
    if state == "active":
        return
    row.outcome = state
    session.add(row)
    if state == "inactive":
        raise CodeGone("This code has been switched off.")
    if state == "expired":
        raise CodeGone(f"This code expired on {record.valid_until:%Y-%m-%d}.")
    raise CodeNotYetValid(f"This code is valid from {record.valid_from:%Y-%m-%d %H:%M} UTC.")


def _vouched(
    session: Session, tenant_id: str, *, oauth_code, login_code, phone_code
) -> tuple[WechatIdentity | None, str | None]:
    identity = None
    if oauth_code is not None:
        identity = wechat.identity_from_oauth_code(session, tenant_id, oauth_code)
    elif login_code is not None:
        identity = wechat.identity_from_login_code(session, tenant_id, login_code)
    phone = wechat.phone_from_code(session, tenant_id, phone_code) if phone_code else None
    return identity, phone


def _identify(session: Session, tenant_id: str, *, phone, identity: WechatIdentity | None):
    """(member, created) for who WeChat says scanned; (None, False) for nobody or staff."""
    if phone is None and identity is None:
        return None, False
    if phone and session.scalar(select(Staff.id).where(Staff.phone == phone)):
        return None, False  # staff cannot be members, nor recruit themselves
    unionid = identity.unionid if identity else None
    identities = {identity.kind: identity.openid} if identity else None
    try:
        with session.begin_nested():  # a burst of scans by one new person: one member
            return ensure_member(
                session,
                tenant_id=tenant_id,
                source_channel="store_scan",
                phone=phone,
                unionid=unionid,
                identities=identities,
            )
    except IntegrityError:  # the rolled-back savepoint took its change-log notes with it
        member = resolve_member(
            session, tenant_id=tenant_id, phone=phone, unionid=unionid, identities=identities
        )
        if member is None:
            raise
        return member, False


def _bind(
    session: Session, *, code: ScanCode, member: Member, guide, created: bool, now: datetime
) -> bool:
    """Bind a new or unbound member to the guide; a running lock keeps the old binding.

    Only a guide's personal code takes over a member whose lock has run out. A member
    created by this scan is a recruitment: `member_recruited` announces it.
    """
    if guide is None or member.guide_id == guide.id:
        return False
    locked = member.binding_locked_until is not None and member.binding_locked_until > now
    if member.guide_id is not None and (locked or code.kind != "guide"):
        return False
    staff = session.get_one(Staff, guide.id)
    reason = "recruited" if created else ("scan" if member.guide_id is None else "rebind")
    bindings.bind(session, member=member, guide=staff, reason=reason, now=now)
    if created:
        member_recruited.send(session, member=member, guide=staff, source="scan")
    return True


def _write_tags(session: Session, *, code: ScanCode, member: Member) -> None:
    if not code.tag_ids:
        return
    tags = session.scalars(
        select(Tag).where(Tag.tenant_id == code.tenant_id, Tag.id.in_(code.tag_ids))
    ).all()
    for tag in tags:
        tag_member(
            session, actor=None, member=member, tag=tag, source="scan_channel", source_ref=code.code
        )


def _answer(row: Scan, code: ScanCode, destination: Destination, guide, *, local) -> dict:
    """What the landing page shows; open/closed is read at the tenant's wall-clock time."""
    store: Any = destination.store  # a row of routing._STORE_COLUMNS
    return {
        "scan_id": row.id,
        "code": code.code,
        "kind": code.kind,
        "channel": code.channel,
        "resolution": destination.resolution,
        "store": None
        if store is None
        else {
            "id": store.id,
            "name": store.name,
            "address": store.address,
            "phone": store.phone,
            "distance_m": None
            if destination.distance_m is None
            else round(destination.distance_m, 1),
            "opening_hours": store.opening_hours or {},
            "hours_today": hours.hours_on(store.opening_hours, local),
            "open_now": hours.open_at(store.opening_hours, local),
            "next_opening": hours.next_opening(store.opening_hours, local),
        },
        "guide": None if guide is None else {"id": guide.id, "name": guide.name},
        "wecom_contact_qr_url": store.wecom_contact_qr_url if store is not None else None,
        "community_qr_url": store.community_qr_url if store is not None else None,
        "fallback_url": destination.fallback_url or code.fallback_url,
    }
