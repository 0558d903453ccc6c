"""Organisation rules: stores and staff, created and changed through the policy layer."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from guideapp import audit, policy
from guideapp.policy.references import resolve_id
from guideapp.passwords import hash_password, password_problems
from guideapp.policy.actor import Actor
from guideapp.db import utcnow
from guideapp.errors import Conflict, InvalidInput, InvalidState, NotFound
from guideapp.org.access import STORE_PROFILE_FIELDS_FOR_MANAGERS
from guideapp.org.geo import to_gcj02
from guideapp.org.models import Region, Staff, Store, StoreTag, Tenant
from guideapp.org.signals import staff_password_changed, staff_signed_off
from guideapp.pagination import paginate
from guideapp.phones import normalize_phone
from guideapp.changelog import (
    log_change,
    region_scope,
    staff_scope,
    store_scope,
    tenant_scope,
)
from guideapp.changelog import SyncCounter


def create_tenant(session: Session, *, slug: str, name: str, timezone: str) -> Tenant:
    """Tenants come from the CLI (demo, onboarding), never from a tenant's own staff."""
    tenant = Tenant(slug=slug, name=name, timezone=timezone)
    session.add(tenant)
    session.flush()
    session.add(SyncCounter(tenant_id=tenant.id, value=1))  # cursors start at 1
    session.flush()
    return tenant


# --- stores ---------------------------------------------------------------------


def list_stores(
    session: Session,
    *,
    actor: Actor,
    limit: int,
    cursor: str | None,
    city=None,
    region_id=None,
    state=None,
    tag=None,
):
    stmt = policy.scoped_select(actor, Store)
    if city:
        stmt = stmt.where(Store.city == city)
    if region_id:
        stmt = stmt.where(Store.region_id == region_id)
    if state:
        stmt = stmt.where(Store.state == state)
    if tag:
        stmt = stmt.where(Store.id.in_(select(StoreTag.store_id).where(StoreTag.tag == tag)))
    return paginate(session, stmt, [Store.code, Store.id], limit=limit, cursor=cursor)


def get_store(session: Session, *, actor: Actor, store_id: str) -> Store:
    return policy.get_visible(session, actor, Store, store_id, label="Store")


def create_store(session: Session, *, actor: Actor, data: dict) -> Store:
    data = dict(data)
    policy.require_write(actor, Store(tenant_id=actor.tenant_id), "create")
    region = _region(session, actor, data.pop("region_id"))
    _ensure_code_free(session, actor.tenant_id, data["code"])
    tags = data.pop("tags", [])
    data["lat"], data["lng"] = to_gcj02(data["lat"], data["lng"], data.pop("coord_system"))
    store = Store(tenant_id=actor.tenant_id, region_id=region.id, brand_id=region.brand_id, **data)
    store.tag_rows = [StoreTag(tag=t, tenant_id=actor.tenant_id) for t in dict.fromkeys(tags)]
    session.add(store)
    session.flush()
    _log_store(session, store)
    return store


def update_store(session: Session, *, actor: Actor, store_id: str, data: dict) -> Store:
    store = get_store(session, actor=actor, store_id=store_id)
    data = dict(data)
    manager_fields = set(data) <= STORE_PROFILE_FIELDS_FOR_MANAGERS
    policy.require_write(actor, store, "update_profile" if manager_fields else "update")
    old_region = store.region_id
    if "region_id" in data:
        region = _region(session, actor, data.pop("region_id"))
        store.region_id, store.brand_id = region.id, region.brand_id
    if "lat" in data or "lng" in data:
        if not {"lat", "lng"} <= set(data):
            raise InvalidInput(errors={"lat": ["Send lat and lng together."]})
        system = data.pop("coord_system", "gcj02")
        data["lat"], data["lng"] = to_gcj02(data["lat"], data["lng"], system)
    data.pop("coord_system", None)
    if "tags" in data:
        tags = data.pop("tags")
        store.tag_rows = [StoreTag(tag=t, tenant_id=store.tenant_id) for t in dict.fromkeys(tags)]
    for field, value in data.items():
        setattr(store, field, value)
    store.updated_at = utcnow()
    session.flush()
    _log_store(session, store, extra_scopes=[region_scope(old_region)])
    return store


def set_store_state(session: Session, *, actor: Actor, store_id: str, state: str) -> Store:
    """Close or reopen. A closed store keeps its staff and members; routing skips it."""
    store = get_store(session, actor=actor, store_id=store_id)
    policy.require_write(actor, store, "close" if state == "closed" else "reopen")
    if store.state == state:
        raise InvalidState(f"Store {store.code} is already {state}.")
    store.state = state
    store.updated_at = utcnow()
    session.flush()
    _log_store(session, store)
    return store


def _region(session: Session, actor: Actor, region_id: str) -> Region:
    return resolve_id(session, actor, Region, region_id, field="region_id")


def _ensure_code_free(session: Session, tenant_id: str, code: str) -> None:
    taken = session.scalar(select(Store.id).where(Store.tenant_id == tenant_id, Store.code == code))
    if taken:
        raise Conflict(f"Store code {code} is already used.", errors={"code": ["Already used."]})


def _log_store(session: Session, store: Store, extra_scopes=()) -> None:
    log_change(
        session,
        tenant_id=store.tenant_id,
        table="stores",
        record_id=store.id,
        scopes=[
            tenant_scope(store.tenant_id),
            region_scope(store.region_id),
            store_scope(store.id),
            *extra_scopes,
        ],
    )


# --- staff ----------------------------------------------------------------------


def list_staff(
    session: Session,
    *,
    actor: Actor,
    limit: int,
    cursor: str | None,
    store_id=None,
    role=None,
    state=None,
):
    stmt = policy.scoped_select(actor, Staff)
    if store_id:
        stmt = stmt.where(Staff.store_id == store_id)
    if role:
        stmt = stmt.where(Staff.role == role)
    if state:
        stmt = stmt.where(Staff.state == state)
    return paginate(session, stmt, [Staff.id], limit=limit, cursor=cursor)


def get_staff(session: Session, *, actor: Actor, staff_id: str) -> Staff:
    return policy.get_visible(session, actor, Staff, staff_id, label="Staff member")


def create_staff(session: Session, *, actor: Actor, data: dict) -> Staff:
    data = dict(data)
    # Authorised before the phone is looked up (login phones are unique across tenants, so
    # the check must not answer a caller who may not hire): the role first (a guide hires
    # nobody), then the store id (422 unless the caller's), then the phone.
    draft = Staff(tenant_id=actor.tenant_id, role=data["role"], store_id=actor.store_id)
    policy.require_write(actor, draft, "create")
    staff = Staff(tenant_id=actor.tenant_id, state="active")
    phone = data.pop("phone")
    _apply_staff_fields(session, actor, staff, data)
    policy.require_write(actor, staff, "create")
    _apply_staff_fields(session, actor, staff, {"phone": phone})
    _check_password(data["password"], staff)
    staff.password_hash = hash_password(data["password"])
    session.add(staff)
    session.flush()
    _log_staff(session, staff)
    return staff


def update_staff(session: Session, *, actor: Actor, staff_id: str, data: dict) -> Staff:
    staff = get_staff(session, actor=actor, staff_id=staff_id)
    policy.require_write(actor, staff, "update")
    old_store, old_role = staff.store_id, staff.role
    _apply_staff_fields(session, actor, staff, dict(data))
    if "password" in data:
        _check_password(data["password"], staff)
        staff.password_hash = hash_password(data["password"])
        staff_password_changed.send(session, staff=staff)
        if staff.id != actor.staff_id:
            _audit(session, actor, "staff.password_reset", staff)
    if staff.role != old_role:
        _audit(session, actor, "staff.role_changed", staff, {"from": old_role, "to": staff.role})
    policy.require_write(actor, staff, "update")  # the result must be allowed too
    staff.updated_at = utcnow()
    session.flush()
    _log_staff(session, staff, extra_scopes=[store_scope(old_store)] if old_store else [])
    if staff.store_id != old_store:  # their phone must swap one store's data for another's
        log_change(  # (in the old store's scope too: what the phone held, see sync pull)
            session,
            tenant_id=staff.tenant_id,
            table="_scope",
            record_id=staff.id,
            scopes=[staff_scope(staff.id)] + ([store_scope(old_store)] if old_store else []),
        )
    return staff


def mark_left(
    session: Session, *, actor: Actor, staff_id: str, transfer_to: str | None = None
) -> Staff:
    """The guide leaves: their logins end at once; with `transfer_to`, their members, open
    tasks and future commissions move to that guide in the same transaction."""
    staff = get_staff(session, actor=actor, staff_id=staff_id)
    policy.require_write(actor, staff, "leave")
    if staff.id == actor.staff_id:
        raise InvalidState("You cannot sign yourself off; ask HQ or your manager.")
    if staff.state == "left":
        raise InvalidState(f"{staff.name} has already left.")
    staff.state, staff.left_at = "left", utcnow()
    staff.updated_at = staff.left_at
    session.flush()
    _log_staff(session, staff)
    successor = None
    if transfer_to:
        successor = resolve_id(
            session,
            actor,
            Staff,
            transfer_to,
            field="transfer_to",
            what="active guide",
            where=[Staff.role == "guide", Staff.state == "active"],
        )
    staff_signed_off.send(session, staff=staff, successor=successor, by_staff_id=actor.staff_id)
    return staff


def _apply_staff_fields(session: Session, actor: Actor, staff: Staff, data: dict) -> None:
    if "phone" in data:
        phone = normalize_phone(data["phone"])
        if phone is None:
            raise InvalidInput(errors={"phone": ["Not a mainland mobile number (11 digits)."]})
        clash = session.scalar(select(Staff.id).where(Staff.phone == phone, Staff.id != staff.id))
        if clash:  # the same words whoever (in whichever tenant) has it
            raise Conflict(
                "This phone cannot be used for a login.",
                errors={"phone": ["Choose another phone."]},
            )
        staff.phone = phone
    for field in ("name", "role"):
        if field in data:
            setattr(staff, field, data[field])
    if "wecom_userid" in data:
        userid: str | None = data["wecom_userid"]
        taken = userid is not None and session.scalar(
            select(Staff.id).where(
                Staff.tenant_id == staff.tenant_id,
                Staff.wecom_userid == userid,
                Staff.id != staff.id,
            )
        )
        if taken:
            raise Conflict(
                "Another staff member has this WeCom user id.",
                errors={"wecom_userid": ["Each WeCom user id belongs to one person."]},
            )
        staff.wecom_userid = userid
    if "store_id" in data:
        store_id = data["store_id"]
        store = resolve_id(session, actor, Store, store_id, field="store_id")
        staff.store_id = store_id
        staff.store = None if store_id is None else store
    if staff.role != "hq_admin" and staff.store_id is None:
        raise InvalidInput(errors={"store_id": ["Store managers and guides need a store."]})
    if staff.role == "hq_admin":
        staff.store_id, staff.store = None, None


def _log_staff(session: Session, staff: Staff, extra_scopes=()) -> None:
    scopes = [tenant_scope(staff.tenant_id), *extra_scopes]
    if staff.store_id:
        scopes.append(store_scope(staff.store_id))
    log_change(session, tenant_id=staff.tenant_id, table="staff", record_id=staff.id, scopes=scopes)


def describe_actor(session: Session, *, actor: Actor) -> dict:
    """Me: my staff row, my store (its region and tags) and my tenant, in one round trip
    (the store's tags joined, not fetched by a second SELECT)."""
    found = (
        session.execute(
            policy.scoped_select(actor, Staff)
            .add_columns(Tenant)
            .join(Tenant, Tenant.id == Staff.tenant_id)
            .where(Staff.id == actor.staff_id)
            .options(joinedload(Staff.store).joinedload(Store.tag_rows))
        )
        .unique()
        .first()
    )
    if found is None:
        raise NotFound(f"Staff member {actor.staff_id} not found.")
    staff, tenant = found
    return {"staff": staff, "store": staff.store, "tenant": tenant}


def list_regions(session: Session, *, actor: Actor, limit: int, cursor: str | None):
    stmt = policy.scoped_select(actor, Region)
    return paginate(session, stmt, [Region.code, Region.id], limit=limit, cursor=cursor)


def _check_password(password: str, staff: Staff) -> None:
    problems = password_problems(password, user_inputs=[staff.phone, staff.name])
    if problems:
        raise InvalidInput(errors={"password": problems})


def _audit(session: Session, actor: Actor, action: str, staff: Staff, details=None) -> None:
    audit.record(
        session,
        tenant_id=staff.tenant_id,
        staff_id=actor.staff_id,
        action=action,
        target_kind="staff",
        target_id=staff.id,
        details=details,
    )


def active_actor(session: Session, *, tenant_id: str, staff_id: str | None) -> Actor | None:
    """The actor of a staff member still at work (a job acts as the one who started it and
    sees what they may see now); None once they left or were never of this tenant."""
    staff = session.scalar(select(Staff).where(Staff.id == staff_id, Staff.tenant_id == tenant_id))
    if staff is None or staff.state != "active":
        return None
    return Actor.for_staff(staff)
