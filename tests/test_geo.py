"""Nearest open store: geodesic, radius-bound, tenant-scoped, indexed, equal to brute force."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import pytest
from geopy.distance import geodesic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

import guideapp.models  # noqa: F401  (every table in Base.metadata before create_all)
from guideapp.db import Base, make_engine
from guideapp.org.geo import (
    DEFAULT_MAX_RADIUS_M,
    SEARCH_STEPS_M,
    NearestStore,
    StoreRow,
    candidate_select,
    nearest_open_store,
    nearest_open_store_brute_force,
    to_gcj02,
)
from guideapp.org.models import Brand, Region, Store, Tenant
from tests.databases import backends, scratch_database


PEOPLES_SQUARE = (31.2304, 121.4737)  # Shanghai, GCJ-02
BEIJING = (39.9042, 116.4074)
MOHE = (52.9723, 122.5387)  # China's northernmost county seat


@pytest.fixture(scope="module", params=backends())
def engine(request, tmp_path_factory):
    with scratch_database(request.param, tmp_path_factory) as url:
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        yield engine
        engine.dispose()


@pytest.fixture
def session(engine):
    """Flushed, never committed: each test's rows vanish with its rollback."""
    with Session(engine) as session:
        yield session
        session.rollback()


@dataclass(frozen=True)
class Scope:
    tenant_id: str
    brand_id: str
    region_id: str


def make_tenant(session) -> Scope:
    tenant = Tenant(slug=f"geo-{uuid.uuid4().hex[:12]}", name="Geo test")
    session.add(tenant)
    session.flush()
    brand = Brand(tenant_id=tenant.id, code="b", name="Brand")
    session.add(brand)
    session.flush()
    region = Region(tenant_id=tenant.id, brand_id=brand.id, code="r", name="Region")
    session.add(region)
    session.flush()
    return Scope(tenant.id, brand.id, region.id)


def add_stores(session, scope: Scope, rows: list[StoreRow]) -> None:
    if not rows:
        return
    session.execute(
        insert(Store),
        [
            {
                "id": row.id,
                "tenant_id": scope.tenant_id,
                "brand_id": scope.brand_id,
                "region_id": scope.region_id,
                "code": row.code,
                "name": row.code,
                "city": "test",
                "address": "test",
                "lat": row.lat,
                "lng": row.lng,
                "service_radius_m": row.service_radius_m,
                "state": row.state,
                "opening_hours": {},
            }
            for row in rows
        ],
    )


def offset(origin: tuple[float, float], metres: float, bearing: float) -> tuple[float, float]:
    """The point `metres` from origin along `bearing` (degrees clockwise from north)."""
    point = geodesic(meters=metres).destination(origin, bearing)
    return point.latitude, point.longitude


def store(
    code: str, origin, metres: float, bearing: float, radius: int = 5_000, state: str = "open"
) -> StoreRow:
    lat, lng = offset(origin, metres, bearing)
    return StoreRow(uuid.uuid4().hex, code, lat, lng, radius, state)


def nearest(session, scope: Scope, origin, **kwargs) -> NearestStore | None:
    return nearest_open_store(
        session, tenant_id=scope.tenant_id, lat=origin[0], lng=origin[1], **kwargs
    )


def test_nearest_covering_store_wins(session):
    scope = make_tenant(session)
    rows = [
        store("NORTH", PEOPLES_SQUARE, 800, 0),
        store("EAST", PEOPLES_SQUARE, 300, 90),
        store("FAR", PEOPLES_SQUARE, 2_000, 200),
    ]
    add_stores(session, scope, rows)

    found = nearest(session, scope, PEOPLES_SQUARE)

    assert found.store_id == rows[1].id
    assert found.distance_m == pytest.approx(300, abs=0.01)


def test_a_store_is_skipped_outside_its_own_radius_even_when_nearest(session):
    scope = make_tenant(session)
    rows = [
        store("NEAR", PEOPLES_SQUARE, 500, 90, radius=400),
        store("WIDE", PEOPLES_SQUARE, 1_500, 270, radius=2_000),
    ]
    add_stores(session, scope, rows)

    assert nearest(session, scope, PEOPLES_SQUARE).store_id == rows[1].id


def test_closed_stores_are_skipped(session):
    scope = make_tenant(session)
    rows = [
        store("SHUT", PEOPLES_SQUARE, 100, 0, state="closed"),
        store("OPEN", PEOPLES_SQUARE, 1_000, 0),
    ]
    add_stores(session, scope, rows)

    assert nearest(session, scope, PEOPLES_SQUARE).store_id == rows[1].id


def test_no_store_covering_the_position_gives_none(session):
    scope = make_tenant(session)
    assert nearest(session, scope, PEOPLES_SQUARE) is None  # a tenant without stores
    add_stores(
        session,
        scope,
        [
            store("FAR", PEOPLES_SQUARE, 10_000, 45, radius=5_000),
            store("SHUT", PEOPLES_SQUARE, 10, 45, state="closed"),
        ],
    )

    assert nearest(session, scope, PEOPLES_SQUARE) is None


def test_another_tenants_stores_are_never_returned(session):
    ours, rival = make_tenant(session), make_tenant(session)
    own = store("OURS", PEOPLES_SQUARE, 2_000, 0)
    add_stores(session, ours, [own])
    add_stores(session, rival, [store("THEIRS", PEOPLES_SQUARE, 50, 0, radius=90_000)])

    assert nearest(session, ours, PEOPLES_SQUARE).store_id == own.id
    assert nearest(session, ours, BEIJING) is None  # no store of ours there; theirs are ignored
    add_stores(session, rival, [store("BEIJING", BEIJING, 10, 0)])
    assert nearest(session, ours, BEIJING) is None


def test_ties_go_to_the_lower_code_then_the_lower_id(session):
    scope = make_tenant(session)
    # 999.998 m and 1000.004 m are equal to 0.01 m: the code decides, not the 6 mm.
    rows = [
        store("Z-EAST", PEOPLES_SQUARE, 999.998, 90),
        store("M-WEST", PEOPLES_SQUARE, 1_000.004, 270),
    ]
    add_stores(session, scope, rows)

    assert nearest(session, scope, PEOPLES_SQUARE).store_id == rows[1].id
    assert (
        nearest_open_store_brute_force(rows, lat=PEOPLES_SQUARE[0], lng=PEOPLES_SQUARE[1]).store_id
        == rows[1].id
    )
    # Codes are unique per tenant in the database; a plain list may repeat one: the id decides.
    twins = [
        StoreRow("b" * 32, "SAME", *PEOPLES_SQUARE, 100),
        StoreRow("a" * 32, "SAME", *PEOPLES_SQUARE, 100),
    ]
    for order in (twins, twins[::-1]):
        assert (
            nearest_open_store_brute_force(
                order, lat=PEOPLES_SQUARE[0], lng=PEOPLES_SQUARE[1]
            ).store_id
            == "a" * 32
        )


def test_flat_plane_distance_picks_the_wrong_store_where_geodesic_does_not(session):
    scope = make_tenant(session)
    east = store("EAST", BEIJING, 1_000, 90)
    north = store("NORTH", BEIJING, 1_200, 0)
    add_stores(session, scope, [east, north])

    def degrees_apart(row):  # the peers' mistake: degrees (or x 111 km) with no cos(lat)
        return math.hypot(row.lat - BEIJING[0], row.lng - BEIJING[1])

    assert degrees_apart(north) < degrees_apart(east)  # east-west degrees are 23% short here
    found = nearest(session, scope, BEIJING)
    assert found.store_id == east.id
    assert found.distance_m == pytest.approx(1_000, abs=0.01)


def test_to_gcj02_moves_a_wgs84_position_as_chinese_maps_do():
    wgs84 = PEOPLES_SQUARE
    gcj02 = to_gcj02(*wgs84, "wgs84")

    # The standard GCJ-02 formula gives (31.228458, 121.478223); the often-quoted
    # (31.2285, 121.4782) is the same point rounded to 4 decimals (up to ~7 m of rounding).
    assert geodesic(gcj02, (31.228458, 121.478223)).m < 5
    assert geodesic(gcj02, (31.2285, 121.4782)).m < 10
    assert 400 < geodesic(gcj02, wgs84).m < 700
    assert to_gcj02(*wgs84, "gcj02") == wgs84
    with pytest.raises(ValueError):
        to_gcj02(*wgs84, "bd09")


def test_service_radius_is_capped_at_max_radius(session):
    scope = make_tenant(session)
    huge = store("HUGE", PEOPLES_SQUARE, 120_000, 90, radius=150_000)
    add_stores(session, scope, [huge])

    assert nearest(session, scope, PEOPLES_SQUARE) is None
    assert nearest(session, scope, PEOPLES_SQUARE, max_radius_m=200_000).store_id == huge.id
    assert (
        nearest_open_store_brute_force([huge], lat=PEOPLES_SQUARE[0], lng=PEOPLES_SQUARE[1]) is None
    )


@pytest.mark.parametrize("origin", [PEOPLES_SQUARE, MOHE])
@pytest.mark.parametrize("bearing", [0, 90, 180, 270])
def test_stores_right_at_the_edge_of_each_search_box_are_found(session, origin, bearing):
    scope = make_tenant(session)
    for metres in (1_999.5, 19_999.5, DEFAULT_MAX_RADIUS_M - 0.5):
        edge = store(f"EDGE{metres}", origin, metres, bearing, radius=int(metres) + 1)
        add_stores(session, scope, [edge])
        assert nearest(session, scope, origin).store_id == edge.id
        session.execute(text("DELETE FROM stores WHERE id = :id"), {"id": edge.id})


@pytest.mark.parametrize("origin", [PEOPLES_SQUARE, MOHE])
@pytest.mark.parametrize("step", SEARCH_STEPS_M)
def test_a_store_in_a_box_corner_does_not_hide_a_nearer_one_beyond_its_edge(session, origin, step):
    scope = make_tenant(session)
    corner = store("CORNER", origin, step * 1.2, 45, radius=100_000)  # inside the step's box
    edge = store("EDGE", origin, step * 1.05, 0, radius=100_000)  # nearer, just outside it
    add_stores(session, scope, [corner, edge])

    assert nearest(session, scope, origin).store_id == edge.id


def test_the_brute_force_reference_takes_tuples_and_mappings():
    row = store("ONE", PEOPLES_SQUARE, 700, 10)
    as_tuple, as_dict = tuple(row)[:5], {**row._asdict(), "extra": "ignored"}

    for given_row in (row, as_tuple, as_dict):
        found = nearest_open_store_brute_force(
            [given_row], lat=PEOPLES_SQUARE[0], lng=PEOPLES_SQUARE[1]
        )
        assert found.store_id == row.id
        assert found.distance_m == pytest.approx(700, abs=0.01)


@pytest.mark.parametrize(
    "lat, lng, max_radius_m",
    [
        (91.0, 121.0, 1_000),
        (31.0, 181.0, 1_000),
        (math.nan, 121.0, 1_000),
        (31.0, 121.0, 0),
    ],
)
def test_impossible_queries_are_refused(session, lat, lng, max_radius_m):
    with pytest.raises(ValueError):
        nearest_open_store(session, tenant_id="t", lat=lat, lng=lng, max_radius_m=max_radius_m)
    with pytest.raises(ValueError):
        nearest_open_store_brute_force([], lat=lat, lng=lng, max_radius_m=max_radius_m)


def test_candidates_come_from_the_tenant_lat_lng_index(session, engine):
    scope = make_tenant(session)
    far = [store(f"BJ{i:04d}", BEIJING, 37 * i, i, radius=20_000) for i in range(300)]
    near = [store(f"SH{i}", PEOPLES_SQUARE, 300 * i, 90 * i, radius=5_000) for i in range(3)]
    add_stores(session, scope, far + near)
    query = candidate_select(
        tenant_id=scope.tenant_id,
        lat=PEOPLES_SQUARE[0],
        lng=PEOPLES_SQUARE[1],
        radius_m=DEFAULT_MAX_RADIUS_M,
    )

    assert {row.id for row in session.execute(query)} == {row.id for row in near}
    assert "ix_stores_tenant_lat_lng" in _plan(session, engine, query)


def _plan(session, engine, query) -> str:
    """The plan the database picks once it may not scan the table (tiny test tables)."""
    compiled = query.compile(dialect=engine.dialect)
    conn = session.connection()
    if engine.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
    else:
        params = tuple(compiled.params[name] for name in compiled.positiontup)
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
    return "\n".join(str(row) for row in rows)


# Property: on any store set, the indexed lookup answers exactly as the geopy brute force.

ORIGINS = st.one_of(
    st.sampled_from([PEOPLES_SQUARE, BEIJING, MOHE, (18.2528, 109.5119), (53.4, 134.9)]),
    st.tuples(st.floats(18.0, 53.5), st.floats(73.0, 135.0)),
)
DISTANCES = st.one_of(
    st.floats(0, 3_000),
    st.floats(0, 30_000),
    st.floats(0, 130_000),
    st.sampled_from(
        [1_998.5, 1_999.0, 1_999.5, 2_000.5, 19_998.5, 19_999.5, 20_000.5, 99_999.0, 99_999.9]
    ),
)
BEARINGS = st.one_of(st.sampled_from([0.0, 90.0, 180.0, 270.0]), st.floats(0, 360))


@st.composite
def store_sets(draw):
    origin = draw(ORIGINS)
    rows: list[StoreRow] = []
    for index in range(draw(st.integers(0, 20))):
        if rows and draw(st.booleans()):  # a near-tie: as far as the previous store
            metres = geodesic(origin, rows[-1][2:4]).m + draw(st.sampled_from([0, 0.004, 0.01]))
        else:
            metres = draw(DISTANCES)
        radius = draw(
            st.one_of(
                st.integers(1, 150_000),
                st.integers(-1, 1).map(lambda delta, m=metres: max(1, math.ceil(m) + delta)),
            )
        )
        state = draw(st.sampled_from(["open"] * 9 + ["closed"]))
        rows.append(store(f"S{index:02d}", origin, metres, draw(BEARINGS), radius, state))
    max_radius = draw(st.sampled_from([DEFAULT_MAX_RADIUS_M, DEFAULT_MAX_RADIUS_M, 20_000, 2_500]))
    return origin, rows, max_radius


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(example=store_sets())
def test_indexed_lookup_equals_brute_force(engine, example):
    origin, rows, max_radius = example
    with Session(engine) as session:
        scope, rival = make_tenant(session), make_tenant(session)
        add_stores(session, scope, rows)
        add_stores(session, rival, [store("RIVAL", origin, 0, 0, radius=150_000)])

        found = nearest(session, scope, origin, max_radius_m=max_radius)
        session.rollback()
    assert found == nearest_open_store_brute_force(
        rows, lat=origin[0], lng=origin[1], max_radius_m=max_radius
    )
