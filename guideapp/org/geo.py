"""Coordinates: stores are kept in GCJ-02; positions may arrive in WGS-84 (wx.getLocation)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import prcoords
from geopy.distance import geodesic
from sqlalchemy import Select, func, select

from guideapp.org.models import Store

COORD_SYSTEMS = ("gcj02", "wgs84")

DEFAULT_MAX_RADIUS_M = 100_000
# Boxes tried before the full max radius: a position that a store this close covers is settled
# without reading every store within max_radius_m (a dense city holds thousands of them).
SEARCH_STEPS_M = (2_000, 20_000)

# Lower bounds of metres per degree on the WGS-84 ellipsoid, less a 1% margin for rounding, so
# boxes built from them can only be too large and distance bounds only too small: a degree of
# latitude is never shorter than at the equator (meridional radius a(1-e^2)), and one of
# longitude at latitude phi never shorter than a*cos(phi) (prime vertical radius N >= a).
_M_PER_DEG_LAT = 110_574.0 / 1.01
_M_PER_DEG_LNG_AT_EQUATOR = 111_319.0 / 1.01
_EPSILON_DEG = 1e-6
_TIE_SLACK_M = 0.02  # ties are decided at 0.01 m: pruning must not cut inside one

_WGS84 = geodesic()  # geopy's geodesic, one instance instead of one per pair


@dataclass(frozen=True)
class NearestStore:
    store_id: str
    distance_m: float


class StoreRow(NamedTuple):
    """The columns a nearest-store lookup needs; also what the brute-force reference takes."""

    id: str
    code: str
    lat: float
    lng: float
    service_radius_m: int
    state: str = "open"


@dataclass(frozen=True)
class _Box:
    """Holds every point within some radius of a position, by any path of that length.

    Metres per degree are lower bounds along such paths; m_per_deg_lng is 0 when the box
    spans every longitude (near a pole, or across the antimeridian).
    """

    min_lat: float
    max_lat: float
    m_per_deg_lat: float
    m_per_deg_lng: float = 0.0
    min_lng: float = -180.0
    max_lng: float = 180.0

    def lower_bound_m(self, lat: float, lng: float, row: StoreRow) -> float:
        """Never more than the geodesic distance of a store inside the radius (Minkowski)."""
        return math.hypot(
            (row.lat - lat) * self.m_per_deg_lat, (row.lng - lng) * self.m_per_deg_lng
        )


_Best = tuple[tuple[float, str, str], NearestStore]


def to_gcj02(lat: float, lng: float, coord_system: str) -> tuple[float, float]:
    """Convert a position to GCJ-02 (outside China the two systems coincide)."""
    if coord_system == "gcj02":
        return lat, lng
    if coord_system == "wgs84":
        with warnings.catch_warnings():  # it warns when handed a point outside China
            warnings.simplefilter("ignore")
            converted = prcoords.wgs_gcj((lat, lng), True)
        return converted.lat, converted.lon
    raise ValueError(f"unknown coordinate system {coord_system!r}")


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Geodesic distance on WGS-84 in metres (geopy); the one distance every lookup uses."""
    return _WGS84.measure((lat1, lng1), (lat2, lng2)) * 1000


def nearest_open_store(
    session,
    *,
    tenant_id: str,
    lat: float,
    lng: float,
    max_radius_m: int = DEFAULT_MAX_RADIUS_M,
) -> NearestStore | None:
    """The nearest open store of the tenant whose service radius covers a GCJ-02 position.

    A store serves at most max_radius_m away, whatever its own radius says: that bound is what
    lets an indexed bounding-box query find every candidate. Boxes grow in steps and stop as
    soon as the best store is nearer than the box's radius, since no store outside can beat
    it. Ties go to (distance to 0.01 m, store code, store id). Both ends are in GCJ-02, whose
    offset from WGS-84 varies by centimetres over a store's radius: distances stay geodesic.
    """
    _check_query(lat, lng, max_radius_m)
    radii = [step for step in SEARCH_STEPS_M if step < max_radius_m] + [max_radius_m]
    for radius_m in radii[:-1]:
        best = _search(session, tenant_id, lat, lng, radius_m, max_radius_m)
        # 1 m inside the radius: a store beyond the box is farther by more than a 0.01 m tie
        if best is not None and best.distance_m < radius_m - 1.0:
            return best
    return _search(session, tenant_id, lat, lng, radii[-1], max_radius_m)


def nearest_open_store_brute_force(
    stores: Iterable[StoreRow | tuple | Mapping],
    *,
    lat: float,
    lng: float,
    max_radius_m: int = DEFAULT_MAX_RADIUS_M,
) -> NearestStore | None:
    """The reference: a plain geopy scan over every store given (one tenant's), same rules.

    Stores are StoreRow, tuples in its field order, or mappings with its field names.
    """
    _check_query(lat, lng, max_radius_m)
    best = None
    for row in map(_as_row, stores):
        if row.state == "open":
            best = _better(best, row, distance_m(lat, lng, row.lat, row.lng), max_radius_m)
    return None if best is None else best[1]


def candidate_select(*, tenant_id: str, lat: float, lng: float, radius_m: float) -> Select:
    """Open stores that may cover the position and lie within radius_m, by the index.

    The tenant and lat/lng box bound the scan of ix_stores_tenant_lat_lng; a per-row box from
    the store's own radius thins what comes back. geopy decides in Python.
    """
    return _candidate_query(tenant_id, lat, lng, _bounding_box(lat, lng, radius_m))


def _search(
    session, tenant_id: str, lat: float, lng: float, radius_m: int, max_radius_m: int
) -> NearestStore | None:
    """The nearest covering store among those within radius_m (others may be missed)."""
    box = _bounding_box(lat, lng, radius_m)
    rows = [StoreRow(*row) for row in session.execute(_candidate_query(tenant_id, lat, lng, box))]
    bounded = sorted(
        ((box.lower_bound_m(lat, lng, row), row) for row in rows), key=lambda pair: pair[0]
    )
    best = None
    for bound, row in bounded:  # exact distances nearest-first until none can win
        if best is not None and bound > best[1].distance_m + _TIE_SLACK_M:
            break
        best = _better(best, row, distance_m(lat, lng, row.lat, row.lng), max_radius_m)
    return None if best is None else best[1]


def _candidate_query(tenant_id: str, lat: float, lng: float, box: _Box) -> Select:
    query = select(Store.id, Store.code, Store.lat, Store.lng, Store.service_radius_m).where(
        Store.tenant_id == tenant_id,
        Store.lat.between(box.min_lat, box.max_lat),
        Store.state == "open",
        func.abs(Store.lat - lat) <= Store.service_radius_m / box.m_per_deg_lat + _EPSILON_DEG,
    )
    if not box.m_per_deg_lng:
        return query
    return query.where(
        Store.lng.between(box.min_lng, box.max_lng),
        func.abs(Store.lng - lng) <= Store.service_radius_m / box.m_per_deg_lng + _EPSILON_DEG,
    )


def _bounding_box(lat: float, lng: float, radius_m: float) -> _Box:
    """A lat/lng box holding every point within radius_m (geodesic) of the position.

    A path of radius_m cannot leave the latitude band, and a degree of longitude is shortest
    at the band's poleward edge: that edge's cosine sets the longitude span.
    """
    dlat = radius_m / _M_PER_DEG_LAT + _EPSILON_DEG
    band = _Box(min_lat=lat - dlat, max_lat=lat + dlat, m_per_deg_lat=_M_PER_DEG_LAT)
    poleward = abs(lat) + dlat
    if poleward >= 89.0:
        return band
    m_per_deg_lng = _M_PER_DEG_LNG_AT_EQUATOR * math.cos(math.radians(poleward))
    dlng = radius_m / m_per_deg_lng + _EPSILON_DEG
    if lng - dlng < -180.0 or lng + dlng > 180.0:  # it would wrap the antimeridian
        return band
    return _Box(
        min_lat=band.min_lat,
        max_lat=band.max_lat,
        m_per_deg_lat=_M_PER_DEG_LAT,
        m_per_deg_lng=m_per_deg_lng,
        min_lng=lng - dlng,
        max_lng=lng + dlng,
    )


def _better(best: _Best | None, row: StoreRow, distance: float, max_radius_m: int) -> _Best | None:
    """The better of `best` and `row`, if the row's radius (capped) covers the position."""
    if distance > min(row.service_radius_m, max_radius_m):
        return best
    key = (round(distance, 2), row.code, row.id)
    if best is None or key < best[0]:
        return key, NearestStore(store_id=row.id, distance_m=distance)
    return best


def _as_row(store: StoreRow | tuple | Mapping) -> StoreRow:
    if isinstance(store, StoreRow):
        return store
    if isinstance(store, Mapping):
        return StoreRow(**{field: store[field] for field in StoreRow._fields if field in store})
    return StoreRow(*store)


def _check_query(lat: float, lng: float, max_radius_m: int) -> None:
    if not (math.isfinite(lat) and math.isfinite(lng) and -90 <= lat <= 90 and -180 <= lng <= 180):
        raise ValueError(f"position out of range: ({lat!r}, {lng!r})")
    if max_radius_m <= 0:
        raise ValueError(f"max_radius_m must be positive, got {max_radius_m!r}")
