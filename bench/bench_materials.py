"""Benchmark: a guide's material list with 5,000 materials in the tenant, vs a bare endpoint."""

from __future__ import annotations

import argparse
import time

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.common import bare_flask_p50, emit, migrate, percentiles, scratch_postgres
from guideapp import create_app
from guideapp.config import PROJECT_ROOT, Config
from guideapp.db import make_engine, transaction

GUIDE = "13800000003"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_materials", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--materials", type=int, default=5000)
    args = parser.parse_args(argv)
    iterations = 100 if args.quick else 400
    with scratch_postgres("bench_materials") as url:
        migrate(url)
        engine = make_engine(url)
        aimed = _load(engine, args.materials)
        app = create_app(Config(DATABASE_URL=url, LOG_LEVEL="WARNING", SECRET_KEY="m" * 40))
        client = app.test_client()
        token = client.post(
            "/api/v1/auth/login", json={"phone": GUIDE, "password": "demo-pass-2026"}
        ).get_json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        pages = {
            "first page": "/api/v1/materials?limit=50",
            "search": "/api/v1/materials?limit=50&q=%E7%B4%A0%E6%9D%90",
        }
        figures = {name: _time(client, path, headers, iterations) for name, path in pages.items()}
        seen = len(client.get("/api/v1/materials?limit=200", headers=headers).get_json()["items"])
        me = _time(client, "/api/v1/me", headers, iterations)
        engine.dispose()
    bare = bare_flask_p50(iterations)
    first = figures["first page"]["p50"]
    emit(
        "materials_list",
        title=f"A guide's material list, {args.materials:,} materials in the "
        "tenant, most aimed at other stores",
        target="report the ratio to a bare endpoint",
        comparison=f"list p50 {first} ms = {round(first / bare, 1)}x a bare Flask endpoint "
        f"({bare} ms); any authenticated GET /me {me['p50']} ms",
        materials=args.materials,
        aimed_at_guide=aimed,
        first_page_seen=seen,
        list_ms=figures["first page"],
        search_ms=figures["search"],
        me_ms=me,
        bare_flask_ms=bare,
    )
    return 0


def _load(engine, count: int) -> int:
    """The demo tenant plus `count` materials: 4% for the whole tenant, the rest per store."""
    from guideapp.demo import load_demo

    with Session(engine) as session, transaction(session):
        load_demo(session, PROJECT_ROOT / "fixtures" / "demo")
    with engine.begin() as conn:
        tenant, hq = conn.execute(
            text("SELECT tenant_id, id FROM staff WHERE phone = '13800000001'")
        ).one()
        stores = [
            r[0]
            for r in conn.execute(
                text("SELECT id FROM stores WHERE code NOT IN ('SH001') ORDER BY code")
            )
        ]
        conn.execute(
            text("""
            INSERT INTO materials (id, tenant_id, kind, title, body, url, tags, level, target,
                                   archived, version, created_by, created_at, updated_at)
            SELECT md5('bench-mat-' || i), :t, 'article', '素材 ' || i, '', 'https://x.cn/' || i,
                   '[]', 'hq', '{}', false, 1, :hq, now() - make_interval(secs => i), now()
            FROM generate_series(1, :n) i"""),
            {"t": tenant, "hq": hq, "n": count},
        )
        conn.execute(
            text("""
            INSERT INTO material_audiences (material_id, tenant_id, scope)
            SELECT md5('bench-mat-' || i), :t,
                   CASE WHEN i % 25 = 0 THEN 't:' || :t
                        ELSE 's:' || (CAST(:stores AS text[]))[1 + i % :k] END
            FROM generate_series(1, :n) i"""),
            {"t": tenant, "stores": stores, "k": len(stores), "n": count},
        )
        conn.execute(text("ANALYZE materials; ANALYZE material_audiences"))
    return count // 25


def _time(client, path: str, headers: dict, iterations: int) -> dict:
    for _ in range(10):
        client.get(path, headers=headers)
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return percentiles(samples)


if __name__ == "__main__":
    raise SystemExit(main())
