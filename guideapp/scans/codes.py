"""Channel codes for HQ and store managers: create, list, read, update, switch off."""

from __future__ import annotations

import secrets

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.coupons.models import CouponTemplate
from guideapp.policy.references import resolve_id, resolve_ids
from guideapp.policy.actor import Actor
from guideapp.db import utcnow
from guideapp.errors import InvalidInput
from guideapp.members.models import Tag
from guideapp.org.models import Staff, Store
from guideapp.pagination import paginate
from guideapp.scans.models import ScanCode
from guideapp.scans.signals import code_changed

# No 0/O, 1/l/I: codes get typed from posters too.
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 10


def new_code_string(session: Session) -> str:
    while True:  # 55^10 codes: a clash is astronomically rare, but checked
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        if session.scalar(select(ScanCode.id).where(ScanCode.code == code)) is None:
            return code


def code_url(code: ScanCode, base_url: str) -> str:
    return base_url.rstrip("/") + "/" + code.code


def present(code: ScanCode, base_url: str) -> dict:
    data = {c.key: getattr(code, c.key) for c in ScanCode.__table__.columns}
    data["url"] = code_url(code, base_url)
    return data


def create_code(
    session: Session,
    *,
    actor: Actor,
    data: dict,
    code: str | None = None,
    created_by: str | None = None,
) -> ScanCode:
    """HQ: any kind; a manager: store and guide codes of their own store."""
    data = dict(data)
    kind = data["kind"]
    record = ScanCode(
        tenant_id=actor.tenant_id,
        kind=kind,
        channel=data["channel"],
        name=data.get("name", ""),
        created_by=created_by or actor.staff_id,
    )
    if kind == "guide":
        guide = _required(session, actor, Staff, data, "guide_id", what="active guide")
        record.guide_id, record.store_id = guide.id, guide.store_id
    elif kind == "store":
        record.store_id = _required(session, actor, Store, data, "store_id").id
    elif data.get("store_id") or data.get("guide_id"):
        raise InvalidInput(errors={"store_id": ["LBS codes route to the nearest store."]})
    policy.require_write(actor, record, "create")
    _apply(session, actor, record, data)
    record.code = code or new_code_string(session)
    session.add(record)
    session.flush()
    code_changed.send(session, code=record)
    return record


def update_code(session: Session, *, actor: Actor, code_id: str, data: dict) -> ScanCode:
    record = policy.get_writable(session, actor, ScanCode, code_id, "update")
    _apply(session, actor, record, data)
    record.updated_at = utcnow()
    session.flush()
    code_changed.send(session, code=record)
    return record


def _apply(session: Session, actor: Actor, record: ScanCode, data: dict) -> None:
    for key in ("name", "channel", "valid_from", "valid_until", "fallback_url", "active"):
        if key in data:
            setattr(record, key, data[key])
    if "tag_ids" in data:
        record.tag_ids = _visible_tags(session, actor, data["tag_ids"])
    if "fallback_store_id" in data:
        store_id = data["fallback_store_id"]
        resolve_id(session, actor, Store, store_id, field="fallback_store_id")
        record.fallback_store_id = store_id
    if "coupon_template_id" in data:
        record.coupon_template_id = _coupon_template(session, actor, record, data)
    if record.valid_from and record.valid_until and record.valid_until <= record.valid_from:
        raise InvalidInput(errors={"valid_until": ["Must be after valid_from."]})


def _coupon_template(session: Session, actor: Actor, record: ScanCode, data: dict):
    """A template the code's author may see and send, active, and usable where the code
    sends people: an HQ template, or a store template on its own store's codes."""
    found = resolve_id(
        session,
        actor,
        CouponTemplate,
        data["coupon_template_id"],
        field="coupon_template_id",
        where=[
            CouponTemplate.active.is_(True),
            or_(CouponTemplate.store_id.is_(None), CouponTemplate.store_id == record.store_id),
        ],
        what="active coupon template for this code",
    )
    return found.id if found is not None else None


def _visible_tags(session: Session, actor: Actor, tag_ids: list[str]) -> list[str]:
    return resolve_ids(session, actor, Tag, tag_ids, field="tag_ids", what="tag", load=False)


def _required(session: Session, actor: Actor, model: type, data: dict, field: str, **kw):
    if not data.get(field):
        raise InvalidInput(errors={field: [f"A {data['kind']} code names its {field[:-3]}."]})
    if model is Staff:
        kw["where"] = [Staff.role == "guide", Staff.state == "active"]
    return resolve_id(session, actor, model, data[field], field=field, **kw)


def get_code(session: Session, *, actor: Actor, code_id: str) -> ScanCode:
    return policy.get_visible(session, actor, ScanCode, code_id, label="Code")


def list_codes(
    session: Session,
    *,
    actor: Actor,
    limit: int,
    cursor: str | None,
    kind=None,
    channel=None,
    store_id=None,
    active=None,
):
    stmt = policy.scoped_select(actor, ScanCode)
    for column, value in (
        (ScanCode.kind, kind),
        (ScanCode.channel, channel),
        (ScanCode.store_id, store_id),
        (ScanCode.active, active),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    return paginate(
        session,
        stmt,
        [ScanCode.created_at, ScanCode.id],
        limit=limit,
        cursor=cursor,
        descending=True,
    )
