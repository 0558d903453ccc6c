"""Benchmark: the indexed nearest-open-store lookup against a geopy brute-force scan."""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import defaultdict

from sqlalchemy import event, text
from sqlalchemy.orm import Session

import guideapp.models  # noqa: F401  (every table in Base.metadata)
from bench.common import emit, machine_info, percentiles, scratch_postgres
from bench.stores_gen import generate_positions, generate_stores, insert_stores
from guideapp.db import Base, make_engine
from guideapp.org.geo import (
    DEFAULT_MAX_RADIUS_M,
    StoreRow,
    candidate_select,
    nearest_open_store,
    nearest_open_store_brute_force,
)
from guideapp.org.models import Brand, Region, Tenant

INDEX_NAME = "ix_stores_tenant_lat_lng"
GRID_CELL_DEG = 0.1


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    with scratch_postgres("bench_nearest") as url:
        engine = make_engine(url)
        try:
            figures, plan, mismatches = run(engine, args)
        finally:
            engine.dispose()
    print("candidate query plan at the full max radius:\n  " + plan.replace("\n", "\n  "))
    for mismatch in mismatches[:5]:
        print("MISMATCH", mismatch)
    emit("nearest_store", **figures)
    return 1 if figures["mismatches"] else 0


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_nearest", description=__doc__)
    parser.add_argument("--stores", type=int, default=100_000)
    parser.add_argument("--positions", type=int, default=10_000)
    parser.add_argument(
        "--brute-seconds",
        type=float,
        default=300.0,
        help="time budget for the full geopy reference scan (default 300)",
    )
    return parser.parse_args(argv)


def run(engine, args) -> dict:
    Base.metadata.create_all(engine)
    tenant_id = _make_tenant(engine)
    stores = generate_stores(args.stores)
    started = time.perf_counter()
    with engine.begin() as conn:
        insert_stores(conn, stores, **tenant_id)
        conn.execute(text("ANALYZE stores"))
    insert_s = time.perf_counter() - started
    positions = generate_positions(args.positions)
    tenant = tenant_id["tenant_id"]
    with Session(engine) as session:
        plan = _explain(session, tenant, positions[0])
        indexed_ms, answers = _time_indexed(session, tenant, positions)
        reads = _query_stats(session, tenant, positions)
    check = _check_with_grid(stores, positions, answers)
    brute = _check_with_reference(stores, positions, answers, args.brute_seconds)
    figures = _figures(stores, positions, answers, insert_s, plan, indexed_ms, reads, check, brute)
    return figures, plan, brute["mismatches"] + check["mismatches"]


def _make_tenant(engine) -> dict:
    with Session(engine) as session:
        tenant = Tenant(slug="bench", name="Bench Snacks")
        session.add(tenant)
        session.flush()
        brand = Brand(tenant_id=tenant.id, code="bench", name="Bench")
        session.add(brand)
        session.flush()
        region = Region(tenant_id=tenant.id, brand_id=brand.id, code="cn", name="China")
        session.add(region)
        session.commit()
        return {"tenant_id": tenant.id, "brand_id": brand.id, "region_id": region.id}


def _explain(session, tenant_id, position) -> str:
    query = candidate_select(
        tenant_id=tenant_id, lat=position.lat, lng=position.lng, radius_m=DEFAULT_MAX_RADIUS_M
    )
    compiled = query.compile(dialect=session.get_bind().dialect)
    rows = session.connection().exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
    return "\n".join(row[0] for row in rows)


def _time_indexed(session, tenant_id, positions) -> tuple[list[float], list]:
    for position in positions[:50]:  # warm the connection, plan cache and buffers
        _lookup(session, tenant_id, position)
    timings, answers = [], []
    for position in positions:
        started = time.perf_counter()
        answers.append(_lookup(session, tenant_id, position))
        timings.append((time.perf_counter() - started) * 1000)
    return timings, answers


def _lookup(session, tenant_id, position):
    return nearest_open_store(session, tenant_id=tenant_id, lat=position.lat, lng=position.lng)


def _query_stats(session, tenant_id, positions) -> dict:
    """Queries and rows each lookup reads (an untimed second pass): they follow local
    density, not the tenant's size."""
    queries, rows = [0], [0]

    def count(_conn, cursor, *_args):
        queries[0] += 1
        rows[0] += max(cursor.rowcount, 0)

    engine = session.get_bind()
    per_call = []
    event.listen(engine, "after_cursor_execute", count)
    try:
        for position in positions:
            queries[0] = rows[0] = 0
            _lookup(session, tenant_id, position)
            per_call.append((queries[0], rows[0]))
    finally:
        event.remove(engine, "after_cursor_execute", count)
    return {
        "queries_mean": round(statistics.fmean(q for q, _ in per_call), 2),
        "rows_mean": round(statistics.fmean(r for _, r in per_call), 1),
        "rows_max": max(r for _, r in per_call),
    }


def _check_with_reference(stores, positions, answers, budget_s: float) -> dict:
    """The reference: a plain geopy scan over every store, for as many positions as fit."""
    deadline = time.perf_counter() + budget_s
    timings, mismatches = [], []
    for index, (position, answer) in enumerate(zip(positions, answers, strict=True)):
        if time.perf_counter() >= deadline:
            break
        started = time.perf_counter()
        expected = nearest_open_store_brute_force(stores, lat=position.lat, lng=position.lng)
        timings.append((time.perf_counter() - started) * 1000)
        if expected != answer:
            mismatches.append({"position": index, "indexed": answer, "brute": expected})
    return {"timings_ms": timings, "mismatches": mismatches, "seconds": sum(timings) / 1000}


def _check_with_grid(stores, positions, answers) -> dict:
    """Every position: the geopy scan again, over an independent, generous in-memory cut.

    Not the reference (the full scan cannot cover 10,000 positions in minutes): the grid
    keeps every store that could cover the position and be at most as far as the indexed
    answer, so any store the SQL box wrongly dropped, or a wrong answer, shows as a mismatch.
    """
    started = time.perf_counter()
    grid = _Grid(stores)
    mismatches = []
    for index, (position, answer) in enumerate(zip(positions, answers, strict=True)):
        within = None if answer is None else answer.distance_m + 0.02
        nearby = grid.around(position.lat, position.lng, within)
        expected = nearest_open_store_brute_force(nearby, lat=position.lat, lng=position.lng)
        if expected != answer:
            mismatches.append({"position": index, "indexed": answer, "grid": expected})
    return {"mismatches": mismatches, "seconds": time.perf_counter() - started}


class _Grid:
    """Stores bucketed in 0.1-degree cells, with a deliberately generous flat-map cut."""

    def __init__(self, stores: list[StoreRow]):
        self.cells: dict[tuple[int, int], list[StoreRow]] = defaultdict(list)
        for store in stores:
            self.cells[self._cell(store.lat, store.lng)].append(store)
        self.reach_m = min(max(s.service_radius_m for s in stores), DEFAULT_MAX_RADIUS_M)

    @staticmethod
    def _cell(lat: float, lng: float) -> tuple[int, int]:
        return math.floor(lat / GRID_CELL_DEG), math.floor(lng / GRID_CELL_DEG)

    def around(self, lat: float, lng: float, within_m: float | None = None) -> list[StoreRow]:
        """Stores that might cover the position, and be nearer than within_m if given.

        A flat-map distance with degrees taken a fifth shorter than they can be is a lower
        bound of the geodesic one, so nothing that could qualify is left out.
        """
        m_per_deg_lat = 110_000 / 1.2
        reach_deg = self.reach_m / m_per_deg_lat
        m_per_deg_lng = 111_000 / 1.2 * math.cos(math.radians(min(abs(lat) + reach_deg, 89.0)))
        reach_lng = self.reach_m / m_per_deg_lng
        limit = math.inf if within_m is None else within_m
        lat0, lng0 = self._cell(lat - reach_deg, lng - reach_lng)
        lat1, lng1 = self._cell(lat + reach_deg, lng + reach_lng)
        nearby = []
        for i in range(lat0, lat1 + 1):
            for j in range(lng0, lng1 + 1):
                for store in self.cells.get((i, j), ()):
                    flat = math.hypot(
                        (store.lat - lat) * m_per_deg_lat, (store.lng - lng) * m_per_deg_lng
                    )
                    if flat <= store.service_radius_m and flat <= limit:
                        nearby.append(store)
        return nearby


def _p50_by_kind(positions, timings_ms) -> dict:
    by_kind = defaultdict(list)
    for position, timing in zip(positions, timings_ms, strict=True):
        by_kind[position.kind].append(timing)
    return {kind: round(statistics.median(values), 3) for kind, values in by_kind.items()}


def _figures(stores, positions, answers, insert_s, plan, indexed_ms, reads, check, brute):
    brute_p50 = statistics.median(brute["timings_ms"]) if brute["timings_ms"] else None
    indexed_p50 = statistics.median(indexed_ms)
    ratio = round(brute_p50 / indexed_p50) if brute_p50 else None
    kinds = defaultdict(int)
    for position in positions:
        kinds[position.kind] += 1
    return {
        "title": "Nearest open store: indexed lookup vs geopy brute force (PostgreSQL)",
        "target": "0 mismatches; per-call cost follows the stores near the position",
        "comparison": f"indexed p50 {indexed_p50:.3f} ms vs brute force p50 "
        f"{brute_p50 or float('nan'):.0f} ms over all stores: {ratio}x",
        "stores": len(stores),
        "open_stores": sum(s.state == "open" for s in stores),
        "insert_s": round(insert_s, 2),
        "positions": len(positions),
        "position_kinds": dict(kinds),
        "covered_positions": sum(answer is not None for answer in answers),
        "index_used": INDEX_NAME in plan,
        "reads_per_call": reads,
        "indexed_ms": {**percentiles(indexed_ms), "max": round(max(indexed_ms), 3)},
        "indexed_p50_ms_by_kind": _p50_by_kind(positions, indexed_ms),
        "brute_force_p50_ms": round(brute_p50, 1) if brute_p50 else None,
        "speed_ratio_p50": ratio,
        "equality_checked": f"all {len(positions)} positions vs geopy over a generous grid cut; "
        f"the first {len(brute['timings_ms'])} vs the full geopy scan "
        f"of every store (all that fit its time budget)",
        "reference_checked_positions": len(brute["timings_ms"]),
        "reference_check_s": round(brute["seconds"], 1),
        "reference_mismatches": len(brute["mismatches"]),
        "grid_checked_positions": len(positions),
        "grid_check_s": round(check["seconds"], 1),
        "grid_mismatches": len(check["mismatches"]),
        "mismatches": len(brute["mismatches"]) + len(check["mismatches"]),
        "machine": machine_info(),
    }


if __name__ == "__main__":
    sys.exit(main())
