"""Member use cases for guides, managers and HQ: search, card, notes, tags, binding, points."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import NamedTuple, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import Select, String, bindparam, func, null, or_, select
from sqlalchemy.orm import Session

from guideapp import audit, policy
from guideapp.policy.references import resolve_id, resolve_ids
from guideapp.policy.actor import Actor
from guideapp.db import utcnow
from guideapp.changelog import log_changes
from guideapp.db import insert_rows, new_id
from guideapp.errors import InvalidInput
from guideapp.members import binding as bindings
from guideapp.members.access import SEE_PHONE
from guideapp.members import points, tags
from guideapp.members.identity import (
    create_member,
    follow_merges,
    log_member,
    member_scopes,
    resolve_member,
)
from guideapp.members.models import Member, MemberNote, MemberTag, Order, Tag, TagGroup
from guideapp.members.orders import spend_from, spend_of
from guideapp.members.signals import member_card_requested, member_recruited
from guideapp.org.models import Staff, Store, Tenant
from guideapp.pagination import KeptIdPage, paginate, paginate_branches
from guideapp.phones import mask_phone, normalize_phone
from guideapp.statements import Prebuilt, record_columns


ID_CHUNK = 900  # ids per IN (...) look-up
MAX_MERGE_HOPS = 10


def visible_members(session: Session, *, actor: Actor, member_ids) -> dict[str, Member]:
    """Many members at once, as `get_member` finds one (a sync push names hundreds): each
    requested id -> the visible member it resolves to (a merged-away id to its survivor).
    Ids the actor may not see, or that name no member, are absent. A few queries in all."""
    loaded: dict[str, Member] = {}

    def load(ids) -> None:
        ids = sorted(set(ids) - loaded.keys())
        for i in range(0, len(ids), ID_CHUNK):
            for member in session.scalars(
                select(Member).where(Member.id.in_(ids[i : i + ID_CHUNK]))
            ):
                loaded[member.id] = member

    load(member_ids)
    resolved: dict[str, Member | None] = {i: loaded.get(i) for i in member_ids}
    for _ in range(MAX_MERGE_HOPS):
        merged = {m.merged_into_id for m in resolved.values() if m is not None and m.merged_into_id}
        if not merged:
            break
        load(merged)
        resolved = {
            i: loaded.get(m.merged_into_id) if m is not None and m.merged_into_id else m
            for i, m in resolved.items()
        }
    final = sorted({m.id for m in resolved.values() if m is not None})
    visible: set[str] = set()
    for i in range(0, len(final), ID_CHUNK):
        visible.update(
            session.scalars(
                select(Member.id).where(
                    Member.id.in_(final[i : i + ID_CHUNK]), policy.visible(actor, Member)
                )
            )
        )
    return {i: m for i, m in resolved.items() if m is not None and m.id in visible}


def get_member(
    session: Session,
    *,
    actor: Actor,
    member_id: str,
    action: str | None = None,
    field: str | None = None,
):
    """A visible member; a merged-away id resolves to its survivor. With `field`, the id came
    in a body: an unknown or invisible one is a 422 naming that field, not a 404."""
    if not field:  # the common case first: a visible member that was never merged away
        params = {**actor.bound_values(), "member_id": member_id}
        member = _VISIBLE_MEMBER.orm(session, params, actor.shape).scalars().first()
        if member is not None and not member.merged_into_id:
            if action:
                policy.require_write(actor, member, action)
            return member
    member = session.get(Member, member_id)
    if member is not None and member.merged_into_id:
        member = follow_merges(session, member)
        assert member is not None  # merged_into_id is a foreign key
        member_id = member.id
    if field:
        member = resolve_id(session, actor, Member, member_id, field=field)
    else:
        member = policy.get_visible(session, actor, Member, member_id, label="Member")
    if action:
        policy.require_write(actor, member, action)
    return member


def _visible_member(shape) -> Select:
    """One member by id, if an actor of `shape` may see it (kept: Prebuilt)."""
    stmt = policy.scoped_select(Actor.parametric(shape), Member)
    return stmt.where(Member.id == bindparam("member_id", type_=String()))


_VISIBLE_MEMBER = Prebuilt(lambda _dialect, shape: _visible_member(shape))
# The same, read as a record (the card: shown, not changed).
_VISIBLE_MEMBER_RECORD = Prebuilt(
    lambda _dialect, shape: _visible_member(shape).with_only_columns(*record_columns(Member)),
    reads=True,
)


def present(actor: Actor, member: Member) -> dict:
    """The member as this caller may see it: phones masked unless it is their business."""
    data = {key: getattr(member, key) for key in _SHOWN}
    data["phone"] = _shown_phone(actor, member)
    return data


# Every column but the search keys derived from others.
_SHOWN = tuple(
    c.key for c in Member.__table__.columns if c.key not in ("phone_tail", "birthday_mmdd")
)


# What a member shows where it is embedded (a task's target); a row given to
# present_summary() holds these and what the phone rule reads (store_id, guide_id).
SUMMARY = ("name", "phone", "stage", "tier", "birthday", "last_order_at")
SUMMARY_COLUMNS = [getattr(Member, key) for key in (*SUMMARY, "store_id", "guide_id")]


def present_summary(actor: Actor, member) -> dict:
    """The SUMMARY of a member (an ORM object or a row of SUMMARY_COLUMNS), its phone
    masked as present() masks it."""
    data = {key: getattr(member, key) for key in SUMMARY}
    data["phone"] = _shown_phone(actor, member)
    return data


def _shown_phone(actor: Actor, member) -> str | None:
    return member.phone if policy.allows(actor, SEE_PHONE, member) else mask_phone(member.phone)


def search(
    session: Session,
    *,
    actor: Actor,
    limit: int,
    cursor: str | None,
    q=None,
    phone_tail=None,
    tag_id=None,
    stage=None,
    birthday_month=None,
    birthday_this_month=False,
    silent_days=None,
    guide_id=None,
    store_id=None,
):
    filters = (guide_id, store_id, q, phone_tail, stage, tag_id, birthday_month)
    if not any(filters) and not birthday_this_month and silent_days is None:  # the whole book
        page = _BOOK.page(
            session, actor.bound_values(), variant=actor.shape, limit=limit, cursor=cursor
        )
        return _shown(session, actor, page)
    stmt = select(Member).where(Member.state == "active")  # the read rule: see the page below
    if guide_id:
        stmt = stmt.where(Member.guide_id == guide_id)
    if store_id:
        stmt = stmt.where(Member.store_id == store_id)
    if q:
        stmt = stmt.where(Member.name.contains(q, autoescape=True))
    if phone_tail:
        stmt = stmt.where(Member.phone_tail == phone_tail)
    if stage:
        stmt = stmt.where(Member.stage == stage)
    if tag_id:
        stmt = stmt.where(
            Member.id.in_(select(MemberTag.member_id).where(MemberTag.tag_id == tag_id))
        )
    if birthday_this_month:
        birthday_month = _today(session, actor.tenant_id).month
    if birthday_month:
        month = f"{birthday_month:02d}"
        stmt = stmt.where(
            Member.birthday_mmdd >= month + "01", Member.birthday_mmdd <= month + "31"
        )
    if silent_days is not None:
        cutoff = utcnow() - timedelta(days=silent_days)
        stmt = stmt.where(
            func.coalesce(Member.last_order_at, Member.joined_at) < cutoff,
            or_(Member.last_contact_at.is_(None), Member.last_contact_at < cutoff),
        )
    branches = policy.visible_branches(actor, Member)
    if len(branches) > 1:
        # A guide's read rule is an OR no index returns in id order: walk each side on its
        # own index (bound to me / the store's unassigned pool) and merge the pages.
        page = paginate_branches(session, Member, stmt, branches, limit=limit, cursor=cursor)
    else:
        page = paginate(session, stmt.where(*branches), [Member.id], limit=limit, cursor=cursor)
    return _shown(session, actor, page)


def _the_book(shape) -> tuple:
    """The members a phone's member list opens on, for a kept statement (KeptIdPage)."""
    branches = policy.visible_branches(Actor.parametric(shape), Member)
    return select(Member).where(Member.state == "active"), branches, record_columns(Member)


_BOOK = KeptIdPage(Member, _the_book)


def _shown(session: Session, actor: Actor, page: dict) -> dict:
    shown = [present(actor, m) for m in page["items"]]
    _audit_phones_shown(session, actor, page["items"], shown)
    page["items"] = shown
    return page


def _audit_phones_shown(session: Session, actor: Actor, members, shown) -> None:
    """A page of full phones of members who are not the viewer's own is an audited look
    (HQ and managers browsing the book); a guide's own members are their daily work."""
    others = sum(
        1
        for member, item in zip(members, shown, strict=True)
        if item["phone"] and item["phone"] == member.phone and member.guide_id != actor.staff_id
    )
    if others:
        audit.record(
            session,
            tenant_id=actor.tenant_id,
            staff_id=actor.staff_id,
            action="members.phones_viewed",
            details={"count": others},
        )


def card(session: Session, *, actor: Actor, member_id: str) -> dict:
    # Read only: the member as a record when visible and never merged away (most cards).
    params = {**actor.bound_values(), "member_id": member_id}
    found = _VISIBLE_MEMBER_RECORD.execute(session, params, actor.shape).records()
    if found and not found[0].merged_into_id:
        member = found[0]
    else:
        member = get_member(session, actor=actor, member_id=member_id)
    ids = {
        "member_id": member.id,
        "guide_id": member.guide_id,
        "store_id": member.store_id,
        "tenant_id": member.tenant_id,
    }
    variant = (member.guide_id is not None, member.store_id is not None)
    summary = _CARD_SUMMARY.execute(session, ids, variant)[0]
    balance, orders, spend, guide_name, store_name, store_code, zone = tuple(summary)
    result = {
        "member": present(actor, member),
        "points_balance": int(balance),
        **spend_from((orders, spend)),
        "tags": _tags_by_group(session, member.id),
        "recent_orders": _RECENT_ORDERS.execute(session, ids).records(),
        "bound_guide": {"id": member.guide_id, "name": guide_name} if member.guide_id else None,
        "bound_store": {"id": member.store_id, "name": store_name, "code": store_code}
        if member.store_id
        else None,
        "notes": _RECENT_NOTES.execute(session, ids).records(),
        "care_dates": care_dates(member, _local_today(zone)),
        "open_tasks": [],
        "coupons": [],
        "coupon_counts": {},
    }
    for _receiver, sections in member_card_requested.send(session, actor=actor, member=member):
        result.update(sections)
    return result


def _card_summary_statement(_dialect: str, variant) -> Select:
    """The card's single values in one statement: points, spend, the bound guide's and
    store's names, the tenant's zone (for care dates). Each was a round trip of its own."""
    has_guide, has_store = variant
    member_id = bindparam("member_id", type_=String())
    guide = Staff.id == bindparam("guide_id", type_=String())
    store = Store.id == bindparam("store_id", type_=String())
    nothing = null()
    return select(
        points.balance_of(member_id),
        *spend_of(member_id),
        select(Staff.name).where(guide).scalar_subquery() if has_guide else nothing,
        select(Store.name).where(store).scalar_subquery() if has_store else nothing,
        select(Store.code).where(store).scalar_subquery() if has_store else nothing,
        select(Tenant.timezone)
        .where(Tenant.id == bindparam("tenant_id", type_=String()))
        .scalar_subquery(),
    )


_CARD_SUMMARY = Prebuilt(_card_summary_statement, reads=True)
_RECENT_ORDERS = Prebuilt(
    lambda _dialect, _variant: (
        select(*record_columns(Order))
        .where(Order.member_id == bindparam("member_id", type_=String()))
        .order_by(Order.ordered_at.desc())
        .limit(10)
    ),
    reads=True,
)
_RECENT_NOTES = Prebuilt(
    lambda _dialect, _variant: (
        select(*record_columns(MemberNote))
        .where(MemberNote.member_id == bindparam("member_id", type_=String()))
        .order_by(MemberNote.created_at.desc())
        .limit(20)
    ),
    reads=True,
)


def _tags_by_group(session: Session, member_id: str) -> list[dict]:
    rows = _TAGS.execute(session, {"member_id": member_id})
    groups: dict[str, dict] = {}
    for group_id, group_name, tag_id, tag_name, source in rows:
        group = groups.setdefault(group_id, {"group_id": group_id, "group": group_name, "tags": []})
        group["tags"].append({"id": tag_id, "name": tag_name, "source": source})
    return list(groups.values())


_TAGS = Prebuilt(
    lambda _dialect, _variant: (
        select(TagGroup.id, TagGroup.name, Tag.id, Tag.name, MemberTag.source)
        .join(Tag, Tag.id == MemberTag.tag_id)
        .join(TagGroup, TagGroup.id == Tag.group_id)
        .where(MemberTag.member_id == bindparam("member_id", type_=String()))
        .order_by(TagGroup.name, Tag.name)
    ),
    reads=True,
)


def care_dates(member: Member, today: date) -> list[dict]:
    """Next birthday and next membership anniversary, as calendar dates in the tenant's zone."""
    dates = []
    if member.birthday:
        dates.append({"kind": "birthday", "date": _next_occurrence(member.birthday, today)})
    joined = member.joined_at.date()
    dates.append({"kind": "membership_anniversary", "date": _next_occurrence(joined, today)})
    return sorted(dates, key=lambda d: d["date"])


def _next_occurrence(day: date, today: date) -> date:
    for year in (today.year, today.year + 1):
        try:
            candidate = day.replace(year=year)
        except ValueError:  # 29 February in a common year: celebrate on the 28th
            candidate = date(year, 2, 28)
        if candidate >= today:
            return candidate
    return candidate


def _today(session: Session, tenant_id: str) -> date:
    zone = session.execute(select(Tenant.timezone).where(Tenant.id == tenant_id)).scalar_one()
    return _local_today(zone)


def _local_today(zone: str | None) -> date:
    return datetime.now(ZoneInfo(zone or "Asia/Shanghai")).date()


def add_note(
    session: Session,
    *,
    actor: Actor,
    member_id: str,
    body: str,
    noted_at: datetime | None = None,
    note_id: str | None = None,
) -> MemberNote:
    """A note on a visible member; a client id already used for this note returns it."""
    member = get_member(session, actor=actor, member_id=member_id, action="note")
    if note_id and (existing := session.get(MemberNote, note_id)) is not None:
        if existing.member_id != member.id or existing.author_id != actor.staff_id:
            raise InvalidInput(errors={"id": ["This note id belongs to another note."]})
        return existing  # a retried request: the note is there already
    note = write_note(
        session, actor=actor, member=member, body=body, noted_at=noted_at, note_id=note_id
    )
    session.flush()
    return note


def write_note(
    session: Session,
    *,
    actor: Actor,
    member: Member,
    body: str,
    noted_at: datetime | None = None,
    note_id: str | None = None,
) -> MemberNote:
    """A new note on `member` (fetched visible by the caller with `get_member`) under an id
    no note has."""
    policy.require_write(actor, member, "note")
    note = MemberNote(
        id=note_id or new_id(),
        tenant_id=member.tenant_id,
        member_id=member.id,
        author_id=actor.staff_id,
        body=body,
        noted_at=noted_at,
    )
    session.add(note)
    _contacted(session, member, utcnow())
    log_member(session, member, table="member_notes", record_id=note.id)
    return note


class NewNote(NamedTuple):
    member: Member  # fetched visible by the caller (`visible_members`)
    body: str
    noted_at: datetime | None
    note_id: str  # an id no note has


def write_notes(session: Session, *, actor: Actor, notes: Sequence[NewNote]) -> None:
    """Many new notes at once (a sync push): one INSERT, one change of each member."""
    now = utcnow()
    members: dict[str, Member] = {}
    rows = []
    for note in notes:
        if note.member.id not in members:
            policy.require_write(actor, note.member, "note")
            members[note.member.id] = note.member
        rows.append(
            {
                "id": note.note_id,
                "tenant_id": note.member.tenant_id,
                "member_id": note.member.id,
                "author_id": actor.staff_id,
                "body": note.body,
                "noted_at": note.noted_at,
                "created_at": now,
                "updated_at": now,
            }
        )
    insert_rows(session, MemberNote.__table__, rows)
    scopes = {member_id: member_scopes(m) for member_id, m in members.items()}
    for member in members.values():
        _contacted(session, member, now)
    for tenant_id in {m.tenant_id for m in members.values()}:
        log_changes(
            session,
            tenant_id=tenant_id,
            table="member_notes",
            rows=[
                (note.note_id, scope)
                for note in notes
                if note.member.tenant_id == tenant_id
                for scope in scopes[note.member.id]
            ],
        )


def _contacted(session: Session, member: Member, now: datetime) -> None:
    if member.last_contact_at is None or member.last_contact_at < now - timedelta(minutes=1):
        member.last_contact_at = now  # one write per member, not one per note of a batch
    log_member(session, member)


def tag(session: Session, *, actor: Actor, member_id: str, tag_ids: list[str]) -> list[dict]:
    member = get_member(session, actor=actor, member_id=member_id, action="tag")
    for found in resolve_ids(session, actor, Tag, tag_ids, field="tag_ids"):
        tags.tag_member(session, actor=actor, member=member, tag=found)
    return _tags_by_group(session, member.id)


def untag(session: Session, *, actor: Actor, member_id: str, tag_id: str) -> None:
    member = get_member(session, actor=actor, member_id=member_id, action="tag")
    if not tags.untag_member(session, member=member, tag_id=tag_id):
        raise InvalidInput(errors={"tag_id": ["The member does not have this tag."]})


def register(session: Session, *, actor: Actor, data: dict, member_id: str | None = None) -> Member:
    """A guide registers a new member in store: the member is bound to them (a recruit).

    `member_id` is the phone's own id for a member registered offline."""
    phone = normalize_phone(data["phone"])
    if phone is None:
        raise InvalidInput(errors={"phone": ["Not a mainland mobile number (11 digits)."]})
    if resolve_member(session, tenant_id=actor.tenant_id, phone=phone, unionid=data.get("unionid")):
        raise InvalidInput(
            "This person is already a member; search by phone tail instead.",
            errors={"phone": ["Already a member."]},
        )
    if session.scalar(select(Staff.id).where(Staff.phone == phone)):
        raise InvalidInput(errors={"phone": ["Staff cannot be recruited as members."]})
    guide = session.get_one(Staff, actor.staff_id)
    if not actor.is_guide:
        if not data.get("guide_id"):
            raise InvalidInput(errors={"guide_id": ["Name the guide the member is bound to."]})
        guide = _guide(session, actor, data["guide_id"], field="guide_id")
    member = create_member(
        session,
        tenant_id=actor.tenant_id,
        phone=phone,
        unionid=data.get("unionid"),
        name=data.get("name", ""),
        gender=data.get("gender", "unknown"),
        birthday=data.get("birthday"),
        source_channel="store_scan",
        member_id=member_id,
    )
    bindings.bind(
        session, member=member, guide=guide, reason="recruited", by_staff_id=actor.staff_id
    )
    member_recruited.send(session, member=member, guide=guide, source="registration")
    return member


def assign(session: Session, *, actor: Actor, member_id: str, guide_id: str) -> Member:
    """Bind a member: managers and HQ assign; a guide may claim from the store's pool."""
    member = get_member(session, actor=actor, member_id=member_id)
    claiming = actor.is_guide
    policy.require_write(actor, member, "claim" if claiming else "bind")
    if claiming and guide_id != actor.staff_id:
        raise InvalidInput(errors={"guide_id": ["Guides can only claim members for themselves."]})
    guide = _guide(session, actor, guide_id, field="guide_id")
    bindings.bind(
        session,
        member=member,
        guide=guide,
        reason="rebind" if member.guide_id else "assigned",
        by_staff_id=actor.staff_id,
    )
    return member


def transfer(
    session: Session,
    *,
    actor: Actor,
    from_guide_id: str,
    to_guide_id: str,
    member_ids: list[str] | None,
) -> dict:
    if not (actor.is_hq or actor.is_manager):
        policy.require_write(actor, Member(tenant_id=actor.tenant_id), "transfer")
    from_guide = resolve_id(session, actor, Staff, from_guide_id, field="from_guide_id")
    to_guide = _guide(session, actor, to_guide_id, field="to_guide_id")
    return bindings.transfer_members(
        session,
        tenant_id=actor.tenant_id,
        from_guide=from_guide,
        to_guide=to_guide,
        member_ids=member_ids,
        by_staff_id=actor.staff_id,
    )


def _guide(session: Session, actor: Actor, guide_id: str, *, field: str) -> Staff:
    active_guide = [Staff.role == "guide", Staff.state == "active"]
    return resolve_id(session, actor, Staff, guide_id, field=field, where=active_guide)


def adjust_points(
    session: Session, *, actor: Actor, member_id: str, kind: str, amount: int, reason: str
):
    member = get_member(session, actor=actor, member_id=member_id, action="points")
    points.add_points(session, member=member, kind=kind, points=amount, reason=reason)
    return {"member_id": member.id, "points_balance": points.balance(session, member.id)}


def list_tag_groups(session: Session, *, actor: Actor, limit: int, cursor: str | None):
    return paginate(
        session, policy.scoped_select(actor, TagGroup), [TagGroup.id], limit=limit, cursor=cursor
    )


def list_tags(session: Session, *, actor: Actor, limit: int, cursor: str | None):
    return paginate(session, policy.scoped_select(actor, Tag), [Tag.id], limit=limit, cursor=cursor)


def questionnaire(
    session: Session, *, actor: Actor, member_id: str, name: str, answers: dict
) -> list[dict]:
    member = get_member(session, actor=actor, member_id=member_id, action="tag")
    tags.apply_questionnaire(
        session, actor=actor, member=member, questionnaire=name, answers=answers
    )
    return _tags_by_group(session, member.id)


PROFILE_FIELDS = ("name", "gender", "birthday")


def update_profile(session: Session, *, actor: Actor, member: Member, data: dict) -> Member:
    """The bound guide corrects name, gender or birthday of a member they can see."""
    policy.require_write(actor, member, "update")
    old = {f: getattr(member, f) for f in PROFILE_FIELDS}
    for field in PROFILE_FIELDS:
        if field in data:
            setattr(member, field, data[field])
    if member.gender not in ("female", "male", "unknown"):
        raise InvalidInput(errors={"gender": ["female, male or unknown."]})
    member.birthday_mmdd = member.birthday.strftime("%m%d") if member.birthday else None
    if old != {f: getattr(member, f) for f in PROFILE_FIELDS}:
        member.updated_at = utcnow()
        session.flush()
        log_member(session, member)
    return member


def require_note_author(actor: Actor, note: MemberNote) -> None:
    if note.author_id != actor.staff_id:
        raise InvalidInput(errors={"id": ["Only the author can change a note."]})


def edit_note(session: Session, *, actor: Actor, note: MemberNote, body: str) -> MemberNote:
    """`note`: fetched visible by the caller (policy.get_visible / scoped_select)."""
    require_note_author(actor, note)
    if body != note.body:
        note.body, note.updated_at = body, utcnow()
        session.flush()
        member = session.get_one(Member, note.member_id)
        log_member(session, member, table="member_notes", record_id=note.id)
    return note


def delete_note(session: Session, *, actor: Actor, note: MemberNote) -> None:
    """`note`: fetched visible by the caller."""
    require_note_author(actor, note)
    member = session.get_one(Member, note.member_id)
    session.delete(note)
    session.flush()
    log_member(session, member, table="member_notes", record_id=note.id, deleted=True)


def tag_record(session: Session, *, actor: Actor, member: Member, tag: Tag, record_id: str) -> None:
    """Tag a visible member with a visible tag under the phone's own record id."""
    policy.require_write(actor, member, "tag")
    tags.tag_member(session, actor=actor, member=member, tag=tag, record_id=record_id)


def untag_record(session: Session, *, actor: Actor, member: Member, row: MemberTag) -> None:
    """Remove a visible member tag row (`member`: its visible member)."""
    policy.require_write(actor, member, "tag")
    tags.untag_member(session, member=member, tag_id=row.tag_id)
