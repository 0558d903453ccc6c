"""Where a scan goes: the code's store or guide, the nearest open store, or the fallback."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.org.geo import distance_m, nearest_open_store
from guideapp.org.models import Staff, Store
from guideapp.scans.counters import next_turn
from guideapp.scans.models import ScanCode

_STORE_COLUMNS = (
    Store.id,
    Store.name,
    Store.address,
    Store.phone,
    Store.opening_hours,
    Store.state,
    Store.lat,
    Store.lng,
    Store.wecom_contact_qr_url,
    Store.community_qr_url,
)


@dataclass
class Destination:
    resolution: str  # see models.RESOLUTIONS
    store: object | None = None  # a row of _STORE_COLUMNS
    distance_m: float | None = None
    guide: object | None = None  # a row (id, name) when the code names its guide
    fallback_url: str | None = None


def resolve(session: Session, *, code: ScanCode, position: tuple[float, float] | None):
    """The destination of a scan of `code` at a GCJ-02 position (None: the page sent none)."""
    if code.kind == "lbs":
        found = None
        if position is not None:
            found = nearest_open_store(
                session, tenant_id=code.tenant_id, lat=position[0], lng=position[1]
            )
        if found is not None:
            return Destination("nearest", _store(session, found.store_id), found.distance_m)
        return _fallback(session, code, position)
    guide = None
    store_id = code.store_id
    if code.kind == "guide":
        guide = session.execute(
            select(Staff.id, Staff.name, Staff.store_id).where(
                Staff.id == code.guide_id, Staff.role == "guide", Staff.state == "active"
            )
        ).first()
        store_id = guide.store_id if guide is not None else code.store_id
    store = _store(session, store_id)
    if store is None or store.state != "open":
        return _fallback(session, code, position)
    return Destination(
        "guide" if guide is not None else "store", store, _distance(position, store), guide
    )


def _fallback(session: Session, code: ScanCode, position) -> Destination:
    if code.fallback_store_id:
        store = _store(session, code.fallback_store_id)
        if store is not None and store.state == "open":
            return Destination("fallback_store", store, _distance(position, store))
    if code.fallback_url:
        return Destination("fallback_url", fallback_url=code.fallback_url)
    return Destination("none")


def _store(session: Session, store_id: str | None):
    if store_id is None:
        return None
    return session.execute(select(*_STORE_COLUMNS).where(Store.id == store_id)).first()


def _distance(position, store) -> float | None:
    if position is None:
        return None
    return distance_m(position[0], position[1], store.lat, store.lng)


def choose_guide(session: Session, *, tenant_id: str, store_id: str, bound_guide_id: str | None):
    """The member's bound guide when they work here, else the store's next guide in turn.

    Turns come from one counter row per store (UPDATE ... RETURNING), so concurrent scans
    on several workers still hand guides out strictly in turn.
    """
    guides = session.execute(
        select(Staff.id, Staff.name)
        .where(
            Staff.store_id == store_id,
            Staff.role == "guide",
            Staff.state == "active",
        )
        .order_by(Staff.id)
    ).all()
    if not guides:
        return None
    for guide in guides:
        if guide.id == bound_guide_id:
            return guide
    return guides[(next_turn(session, tenant_id=tenant_id, store_id=store_id) - 1) % len(guides)]
