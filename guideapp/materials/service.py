"""Material library rules: levels, targeting, validity, uploads and shares."""

from __future__ import annotations

import typing
from datetime import datetime
from zoneinfo import ZoneInfo

import filetype
from sqlalchemy import Select, String, bindparam, cast, delete, insert, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from guideapp import policy
from guideapp.policy.references import resolve_id, resolve_ids
from guideapp.policy.actor import Actor
from guideapp.db import UTCDateTime, any_param, utcnow
from guideapp.statements import Prebuilt
from guideapp.errors import InvalidInput
from guideapp.materials.models import (
    Material,
    MaterialAudience,
    MaterialCategory,
    Share,
    StoredUpload,
)
from guideapp.members.models import Member
from guideapp.org.models import Region, Store, Tenant
from guideapp.pagination import KeptPage, paginate
from guideapp.storage import Storage
from guideapp.changelog import (
    log_change,
    region_scope,
    staff_scope,
    store_scope,
    tenant_scope,
)

# What may be uploaded, by detected type (magic bytes, not the client's claim): max bytes.
UPLOAD_LIMITS = {
    "image/jpeg": 10 << 20,
    "image/png": 10 << 20,
    "image/gif": 10 << 20,
    "image/webp": 10 << 20,
    "video/mp4": 100 << 20,
    "application/pdf": 20 << 20,
}
NEEDS_FILE_OR_URL = {"image", "poster", "video"}
NEEDS_URL = {"article", "mini_program", "product"}


def served_name(upload: StoredUpload) -> str:
    """The name a download carries: the uploader's, with the extension of what it is (a PDF
    named poster.png downloads as poster.pdf)."""
    stem = (upload.filename or "upload").rsplit(".", 1)[0] or "upload"
    extension = {mime: ext for ext, mime in _EXTENSIONS.items()}.get(upload.content_type, "bin")
    return f"{stem}.{extension}"


_EXTENSIONS = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "mp4": "video/mp4",
    "pdf": "application/pdf",
}


def store_upload(
    session: Session, *, actor: Actor, storage: Storage, filename: str, data: bytes
) -> StoredUpload:
    kind = filetype.guess(data)
    allowed = ", ".join(sorted(UPLOAD_LIMITS))
    if kind is None or kind.mime not in UPLOAD_LIMITS:
        raise InvalidInput(
            f"This file type is not accepted; send one of: {allowed}.",
            errors={"file": [f"Accepted types: {allowed}."]},
        )
    if len(data) > UPLOAD_LIMITS[kind.mime]:
        limit_mb = UPLOAD_LIMITS[kind.mime] >> 20
        raise InvalidInput(
            f"{kind.mime} files may be at most {limit_mb} MB.",
            errors={"file": [f"At most {limit_mb} MB for {kind.mime}."]},
        )
    stored = storage.save(data, suffix=f".{kind.extension}")
    upload = StoredUpload(
        tenant_id=actor.tenant_id,
        storage_key=stored.key,
        filename=(filename or "upload")[:200],
        content_type=kind.mime,
        size=stored.size,
        checksum=stored.checksum,
        uploaded_by=actor.staff_id,
    )
    session.add(upload)
    session.flush()
    return upload


def get_upload(session: Session, *, actor: Actor, upload_id: str) -> StoredUpload:
    return policy.get_visible(session, actor, StoredUpload, upload_id, label="File")


def audiences_for(session: Session, actor: Actor, material: Material) -> list[str]:
    if material.level == "personal":
        return [staff_scope(typing.cast(str, material.owner_staff_id))]  # set with the level
    if material.level == "store":
        return [store_scope(typing.cast(str, material.owner_store_id))]
    target = material.target or {}
    if target.get("all"):
        return [tenant_scope(material.tenant_id)]
    scopes = []
    for field, model, scope in (
        ("region_ids", Region, region_scope),
        ("store_ids", Store, store_scope),
    ):
        ids = resolve_ids(
            session, actor, model, target.get(field), field=f"target.{field}", load=False
        )
        scopes += [scope(i) for i in ids]
    if not scopes:
        raise InvalidInput(errors={"target": ["Name the audience: all, region_ids or store_ids."]})
    return scopes


def create_material(session: Session, *, actor: Actor, data: dict) -> Material:
    data = dict(data)
    level = data.setdefault("level", "hq" if actor.is_hq else "personal")
    material = Material(tenant_id=actor.tenant_id, created_by=actor.staff_id, **data)
    if level == "store":
        material.owner_store_id = actor.store_id
    if level == "personal":
        material.owner_staff_id = actor.staff_id
    policy.require_write(actor, material, "create")
    _check_content(session, actor, material)
    session.add(material)
    session.flush()
    _set_audiences(session, material, audiences_for(session, actor, material), old=[])
    return material


def update_material(session: Session, *, actor: Actor, material: Material, data: dict):
    policy.require_write(actor, material, "update")
    old = _audiences(session, material.id)
    for field, value in data.items():
        setattr(material, field, value)
    _check_content(session, actor, material)
    material.version += 1
    material.updated_at = utcnow()
    session.flush()
    _set_audiences(session, material, audiences_for(session, actor, material), old=old)
    return material


def get_material(session: Session, *, actor: Actor, material_id: str) -> Material:
    return policy.get_visible(session, actor, Material, material_id, label="Material")


def list_materials(
    session: Session,
    *,
    actor: Actor,
    limit: int,
    cursor: str | None,
    q=None,
    kind=None,
    category_id=None,
    tag=None,
    include_inactive=False,
):
    every = include_inactive and (actor.is_hq or actor.is_manager)
    if not any((q, kind, category_id, tag)):  # what a phone opens
        return _LIBRARY.page(
            session,
            {**actor.bound_values(), "now": utcnow()},
            variant=(actor.shape, every),
            limit=limit,
            cursor=cursor,
        )
    stmt = policy.scoped_select(actor, Material)
    if not every:
        stmt = stmt.where(currently_valid(utcnow()))
    if q:
        stmt = stmt.where(Material.title.contains(q, autoescape=True))
    if kind:
        stmt = stmt.where(Material.kind == kind)
    if category_id:
        stmt = stmt.where(Material.category_id == category_id)
    if tag:
        stmt = stmt.where(cast(Material.tags, String).contains(f'"{tag}"', autoescape=True))
    return paginate(session, stmt, _NEWEST, limit=limit, cursor=cursor, descending=True)


def _library(variant) -> Select:
    """What a phone's first look at the library selects, its values bound at execution."""
    shape, every = variant
    stmt = policy.scoped_select(Actor.parametric(shape), Material)
    return stmt if every else stmt.where(currently_valid(bindparam("now", type_=UTCDateTime())))


_NEWEST = [Material.created_at, Material.id]
_LIBRARY = KeptPage(_library, _NEWEST, descending=True)


def currently_valid(now: datetime | BindParameter):
    return (
        (~Material.archived)
        & or_(Material.valid_from.is_(None), Material.valid_from <= now)
        & or_(Material.valid_to.is_(None), Material.valid_to > now)
    )


def suggestion_summaries(session: Session, actor: Actor, material_ids) -> dict[str, dict]:
    """What an inbox item shows of its suggested material: only ones the actor may share now."""
    if not material_ids:
        return {}
    params = {**actor.bound_values(), "material_ids": sorted(material_ids), "now": utcnow()}
    rows = _SUMMARIES.execute(session, params, actor.shape).mappings()
    return {row["id"]: row for row in rows}


_SUMMARIES = Prebuilt(
    lambda dialect, shape: (
        policy.scoped_select(Actor.parametric(shape), Material)
        .with_only_columns(
            Material.id,
            Material.kind,
            Material.title,
            Material.url,
            Material.cover_url,
            Material.body,
        )
        .where(
            any_param(dialect, Material.id, "material_ids"),
            currently_valid(bindparam("now", type_=UTCDateTime())),
        )
    ),
    reads=True,
)


def record_share(
    session: Session,
    *,
    actor: Actor,
    material_id: str,
    channel: str,
    member_id: str | None = None,
    share_id: str | None = None,
    shared_at_client: datetime | None = None,
) -> Share:
    material = get_material(session, actor=actor, material_id=material_id)
    if share_id and (existing := session.get(Share, share_id)) is not None:
        return existing  # a retried push of the same share counts once
    if member_id is not None:
        resolve_id(session, actor, Member, member_id, field="member_id")
    elif channel == "member":
        raise InvalidInput(errors={"member_id": ["Name the member the material went to."]})
    zone = ZoneInfo(
        session.execute(select(Tenant.timezone).where(Tenant.id == actor.tenant_id)).scalar_one()
    )
    now = utcnow()
    share = Share(
        tenant_id=actor.tenant_id,
        material_id=material.id,
        staff_id=actor.staff_id,
        store_id=actor.store_id,
        member_id=member_id,
        channel=channel,
        day=now.astimezone(zone).date(),
        shared_at=now,
        shared_at_client=shared_at_client,
    )
    if share_id:
        share.id = share_id
    session.add(share)
    session.flush()
    return share


def create_category(
    session: Session, *, actor: Actor, name: str, parent_id: str | None
) -> MaterialCategory:
    category = MaterialCategory(tenant_id=actor.tenant_id, name=name, parent_id=parent_id)
    policy.require_write(actor, category, "create")
    resolve_id(session, actor, MaterialCategory, parent_id, field="parent_id", what="category")
    session.add(category)
    session.flush()
    log_change(
        session,
        tenant_id=actor.tenant_id,
        table="material_categories",
        record_id=category.id,
        scopes=[tenant_scope(actor.tenant_id)],
    )
    return category


def list_categories(session: Session, *, actor: Actor, limit: int, cursor: str | None):
    return paginate(
        session,
        policy.scoped_select(actor, MaterialCategory),
        [MaterialCategory.id],
        limit=limit,
        cursor=cursor,
    )


def log_validity_edges(
    session: Session, *, tenant_id: str, since: datetime | None, now: datetime, **_
) -> None:
    """Materials whose window opened or closed since the last tick reach or leave phones."""
    if since is None:
        return
    edges = select(Material.id).where(
        Material.tenant_id == tenant_id,
        or_(Material.valid_from.between(since, now), Material.valid_to.between(since, now)),
    )
    rows = session.execute(
        select(MaterialAudience.material_id, MaterialAudience.scope).where(
            MaterialAudience.material_id.in_(edges)
        )
    ).all()
    for material_id, scope in rows:
        log_change(
            session, tenant_id=tenant_id, table="materials", record_id=material_id, scopes=[scope]
        )


def _audiences(session: Session, material_id: str) -> list[str]:
    return list(
        session.scalars(
            select(MaterialAudience.scope).where(MaterialAudience.material_id == material_id)
        )
    )


def _set_audiences(session: Session, material: Material, scopes: list[str], old: list[str]):
    session.execute(delete(MaterialAudience).where(MaterialAudience.material_id == material.id))
    session.execute(
        insert(MaterialAudience),
        [
            {"material_id": material.id, "tenant_id": material.tenant_id, "scope": s}
            for s in dict.fromkeys(scopes)
        ],
    )
    log_change(
        session,
        tenant_id=material.tenant_id,
        table="materials",
        record_id=material.id,
        scopes={*old, *scopes},
    )


def _check_content(session: Session, actor: Actor, material: Material) -> None:
    resolve_id(session, actor, StoredUpload, material.upload_id, field="upload_id", what="file")
    category_id = material.category_id
    resolve_id(session, actor, MaterialCategory, category_id, field="category_id", what="category")
    if material.kind in NEEDS_FILE_OR_URL and not (material.upload_id or material.url):
        raise InvalidInput(errors={"upload_id": [f"A {material.kind} needs a file or a url."]})
    if material.kind in NEEDS_URL and not material.url:
        raise InvalidInput(errors={"url": [f"A {material.kind} needs a url."]})
    if material.kind == "text" and not material.body:
        raise InvalidInput(errors={"body": ["A text material needs a body."]})
    if material.valid_from and material.valid_to and material.valid_to <= material.valid_from:
        raise InvalidInput(errors={"valid_to": ["Must come after valid_from."]})
