"""Benchmark: a guide's first sync, an empty incremental pull at 100k vs 1M members, pushes
(500 notes, and 5,000-record pushes with and without refused records)."""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
import uuid

from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from bench.common import (
    bare_flask_p50,
    emit,
    migrate,
    percentiles,
    postgres_url,
    scratch_postgres,
)
from bench.scale import PASSWORD, generate_scale_tenant
from guideapp import create_app
from guideapp.config import Config
from guideapp.db import make_engine

MATERIALS, REPLIES, TASKS, PUSH = 500, 300, 200, 500
BIG_PUSH, BIG_RUNS = 5000, 3  # records in a large push (the maximum batch), runs of each


def main(argv=None) -> int:
    args = _args(argv)
    sizes = (20_000, 100_000) if args.quick else (100_000, 1_000_000)
    with scratch_postgres("bench_sync") as url:
        migrate(url)
        engine = make_engine(url)
        tenants = {
            size: generate_scale_tenant(
                engine,
                members=size,
                slug=f"s{size}",
                stores=400 if args.quick else 4000,
                verbose=False,
            )
            for size in sizes
        }
        for scale in tenants.values():
            _working_set(engine, scale)
        app = create_app(Config(DATABASE_URL=url, LOG_LEVEL="WARNING", SECRET_KEY="b" * 40))
        gc.collect()
        gc.freeze()  # as gunicorn.conf.py's post_worker_init does in each worker
        client = app.test_client()
        empty = {
            size: _empty_pulls(client, scale, args.iterations) for size, scale in tenants.items()
        }
        big = tenants[sizes[-1]]
        first = _first_sync(client, big)
        push_ms, rest_ms = _push(client, big)
        big_pushes = _big_pushes(client, big, url)
        bare = bare_flask_p50(args.iterations)
        engine.dispose()
    small_p50, big_p50 = (empty[s]["p50"] for s in sizes)
    emit(
        "sync_empty_pull",
        title="Empty incremental pull (guide with 2,000 members)",
        target="p50 < 5 ms server time, flat from 100k to 1M members",
        comparison=f"p50 {small_p50} ms at {sizes[0]:,} vs {big_p50} ms at {sizes[-1]:,} "
        f"members (ratio {round(big_p50 / small_p50, 2)}); bare Flask {bare} ms",
        **{f"pull_ms_{s}": empty[s] for s in sizes},
        bare_flask_ms=bare,
    )
    emit(
        "sync_first",
        title="First sync: 2,000 members, 500 materials, 300 replies, 200 tasks",
        target="under 1 s total",
        comparison=f"{first['total_ms']} ms over {first['pages']} "
        f"pages for {first['records']} records",
        **first,
    )
    emit(
        "sync_push",
        title=f"Push of {PUSH} mutations (notes) in one request",
        target="under 1 s",
        comparison=f"one push {push_ms} ms vs {PUSH} REST POSTs "
        f"{rest_ms} ms ({round(rest_ms / push_ms, 1)}x)",
        push_ms=push_ms,
        rest_posts_ms=rest_ms,
    )
    worst = max(big_pushes[n]["ms"]["p50"] for n in big_pushes if n != "note_creates_500")

    def line(name: str) -> str:
        case = big_pushes[name]
        ms = case["ms"]
        db = f" + db {ms['db_cpu']}" if ms["db_cpu"] is not None else ""
        return (
            f"{name} {ms['p50']} ms (cpu: app {ms['app_cpu']}{db}; {case['kb']} KB, "
            f"{case['refused']} refused)"
        )

    emit(
        "sync_push_5000",
        title=f"Pushes of {BIG_PUSH:,} records (the maximum batch), some refused or not",
        target="each well under 1 s on PostgreSQL",
        met=worst < 1000,
        comparison="; ".join(line(name) for name in big_pushes),
        **{name: case["ms"] for name, case in big_pushes.items()},
        **{f"{name}_body_kb": case["kb"] for name, case in big_pushes.items()},
        **{f"{name}_refused": case["refused"] for name, case in big_pushes.items()},
    )
    return 0


def _args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20k and 100k members")
    parser.add_argument("--iterations", type=int, default=200)
    return parser.parse_args(argv)


def _working_set(engine, scale) -> None:
    """500 materials and 200 tasks for the heavy guide (set-based); replies when present."""
    params = {
        "t": scale.tenant_id,
        "g": scale.heavy_guide_id,
        "s": scale.store_id(0),
        "k": scale.key,
    }
    with engine.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO materials (id, tenant_id, kind, title, body, url, tags, level, target,
                                   archived, version, created_by, created_at, updated_at)
            SELECT md5(:k || '/mat/' || i), :t, 'article', '素材 ' || i, '', 'https://x.cn/' || i,
                   '[]', 'hq', '{"all": true}', false, 1, :g, now(), now()
            FROM generate_series(1, :n) i"""),
            {**params, "n": MATERIALS},
        )
        conn.execute(
            text("""
            INSERT INTO material_audiences (material_id, tenant_id, scope)
            SELECT md5(:k || '/mat/' || i), :t, 't:' || :t FROM generate_series(1, :n) i"""),
            {**params, "n": MATERIALS},
        )
        conn.execute(
            text("""
            INSERT INTO tasks (id, tenant_id, store_id, assignee_id, source, dedupe_key, title,
                               brief, starts_at, due_at, state, created_at, updated_at)
            SELECT md5(:k || '/task/' || i), :t, :s, :g, 'store', 'bench:' || :k || ':' || i,
                   '任务 ' || i, '', now(), now() + interval '3 days', 'open', now(), now()
            FROM generate_series(1, :n) i"""),
            {**params, "n": TASKS},
        )
        has_replies = conn.execute(text("SELECT to_regclass('quick_replies') IS NOT NULL")).scalar()
        if has_replies:
            _replies(conn, params)


def _replies(conn, params) -> None:
    columns = {
        r[0]
        for r in conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'quick_replies'"
            )
        )
    }
    wanted = {
        "id": "md5(:k || '/reply/' || i)",
        "tenant_id": ":t",
        "title": "'话术 ' || i",
        "body": "'您好 {member.name}'",
        "scene": "'greeting'",
        "level": "'hq'",
        "usage_count": "0",
        "created_at": "now()",
        "updated_at": "now()",
        "created_by": ":g",
        "tag_ids": "'[]'",
        "version": "1",
        "tagged": "false",
    }
    use = {c: v for c, v in wanted.items() if c in columns}
    conn.execute(
        text(
            f"INSERT INTO quick_replies ({', '.join(use)}) SELECT "
            f"{', '.join(use.values())} FROM generate_series(1, {REPLIES}) i"
        ),
        params,
    )


def _login(client, phone: str) -> dict:
    body = client.post("/api/v1/auth/login", json={"phone": phone, "password": PASSWORD})
    return {"Authorization": f"Bearer {body.get_json()['access_token']}"}


def _heavy_phone(client, scale) -> dict:
    engine = make_engine(client.application.config["DATABASE_URL"])
    with engine.connect() as conn:
        phone = conn.execute(
            text("SELECT phone FROM staff WHERE id = :g"), {"g": scale.heavy_guide_id}
        ).scalar_one()
    engine.dispose()
    return _login(client, phone)


def _empty_pulls(client, scale, iterations: int) -> dict:
    headers = _heavy_phone(client, scale)
    first = client.get(
        "/api/v1/sync/pull?schema_version=2&last_pulled_at=null", headers=headers
    ).get_json()
    url = f"/api/v1/sync/pull?schema_version=2&last_pulled_at={first['timestamp']}"
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        body = client.get(url, headers=headers).get_json()
        samples.append((time.perf_counter() - started) * 1000)
        assert not any(ops["updated"] or ops["deleted"] for ops in body["changes"].values())
    return percentiles(samples)


def _first_sync(client, scale) -> dict:
    headers = _heavy_phone(client, scale)
    started, pages, records, page = time.perf_counter(), 0, {}, None
    while True:
        url = "/api/v1/sync/pull?schema_version=2&last_pulled_at=null"
        body = client.get(url + (f"&page={page}" if page else ""), headers=headers).get_json()
        pages += 1
        for table, ops in body["changes"].items():
            records[table] = records.get(table, 0) + len(ops["updated"])
        page = body["next_page"]
        if not page:
            break
    total = round((time.perf_counter() - started) * 1000, 1)
    return {
        "total_ms": total,
        "pages": pages,
        "records": sum(records.values()),
        "per_table": records,
    }


def _push(client, scale) -> tuple[float, float]:
    headers = _heavy_phone(client, scale)
    first = client.get(
        "/api/v1/sync/pull?schema_version=2&last_pulled_at=null&page=", headers=headers
    ).get_json()
    members = [scale.member_id(n) for n in range(0, scale.members, scale.members // 2000)][:50]
    notes = [
        {"id": uuid.uuid4().hex, "member_id": members[i % len(members)], "body": f"离线备注 {i}"}
        for i in range(PUSH)
    ]
    started = time.perf_counter()
    response = client.post(
        f"/api/v1/sync/push?last_pulled_at={first['timestamp']}",
        json={"changes": {"member_notes": {"created": notes, "updated": [], "deleted": []}}},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    push_ms = round((time.perf_counter() - started) * 1000, 1)
    assert response.status_code == 200 and not response.get_json(), response.get_json()
    started = time.perf_counter()
    for i in range(PUSH):
        client.post(
            f"/api/v1/members/{members[i % len(members)]}/notes",
            json={"body": f"在线备注 {i}"},
            headers=headers,
        )
    rest_ms = round((time.perf_counter() - started) * 1000, 1)
    return push_ms, rest_ms


def _big_pushes(client, scale, url) -> dict:
    """5,000-record pushes of the heavy guide: unknown deleted ids (a delete of a missing id is
    ignored), note creates, and note creates of which 10% are refused (members out of scope,
    empty bodies, and one member whose phone is taken, which only the replay can find)."""
    headers = _heavy_phone(client, scale)
    cursor = client.get(
        "/api/v1/sync/pull?schema_version=2&last_pulled_at=null", headers=headers
    ).get_json()["timestamp"]
    members = [scale.member_id(n) for n in range(0, scale.members, scale.members // 2000)][:50]
    engine = make_engine(url)
    with engine.connect() as conn:
        taken = conn.execute(
            text("SELECT phone FROM members WHERE tenant_id = :t AND phone IS NOT NULL LIMIT 1"),
            {"t": scale.tenant_id},
        ).scalar_one()
    engine.dispose()

    def wm_id() -> str:  # WatermelonDB's ids: 16 characters
        return uuid.uuid4().hex[:16]

    def deletes():
        return {
            "member_notes": {
                "created": [],
                "updated": [],
                "deleted": [wm_id() for _ in range(BIG_PUSH)],
            }
        }, 0

    def notes():
        created = [
            {"id": wm_id(), "member_id": members[i % len(members)], "body": f"n{i}"}
            for i in range(BIG_PUSH)
        ]
        return {"member_notes": {"created": created, "updated": [], "deleted": []}}, 0

    def notes_refused():
        refused = BIG_PUSH // 10
        created = [
            {"id": wm_id(), "member_id": members[i % len(members)], "body": f"n{i}"}
            for i in range(BIG_PUSH - refused)
        ]
        created += [
            {"id": wm_id(), "member_id": f"nobody{i}", "body": "x"} for i in range(refused // 2)
        ]
        created += [
            {"id": wm_id(), "member_id": members[0], "body": ""}
            for _ in range(refused - refused // 2 - 1)
        ]
        member = {"id": wm_id(), "phone": taken, "name": "dup"}
        changes = {
            "members": {"created": [member], "updated": [], "deleted": []},
            "member_notes": {"created": created, "updated": [], "deleted": []},
        }
        return changes, refused

    def notes_500():
        created = [
            {"id": wm_id(), "member_id": members[i % len(members)], "body": f"n{i}"}
            for i in range(PUSH)
        ]
        return {"member_notes": {"created": created, "updated": [], "deleted": []}}, 0

    results = {}
    cpu = _BackendCpu(url)
    for name, make in (
        ("deleted_unknown_ids", deletes),
        ("note_creates", notes),
        ("note_creates_10pct_refused", notes_refused),
        ("note_creates_500", notes_500),
    ):
        walls, py, pg, size, refused = [], [], [], 0, 0
        for _ in range(BIG_RUNS):
            changes, refused = make()
            body = json.dumps({"changes": changes}, ensure_ascii=False).encode()
            size = round(len(body) / 1024)
            pg_before = cpu.ms()
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client.post(
                f"/api/v1/sync/push?last_pulled_at={cursor}",
                data=body,
                content_type="application/json",
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            walls.append((time.perf_counter() - started) * 1000)
            py.append((time.process_time() - cpu_started) * 1000)
            pg_after = cpu.ms()
            if pg_before is not None and pg_after is not None:
                pg.append(pg_after - pg_before)
            assert response.status_code == 200, response.get_json()
            got = sum(len(ids) for ids in (response.get_json().get("rejected") or {}).values())
            assert got == refused, (name, got, refused)
        results[name] = {
            "ms": {
                "p50": round(statistics.median(walls), 1),
                "max": round(max(walls), 1),
                "app_cpu": round(statistics.median(py), 1),
                "db_cpu": round(statistics.median(pg), 1) if pg else None,
            },
            "kb": size,
            "refused": refused,
        }
    cpu.close()
    return results


class _BackendCpu:
    """CPU time (ms) the PostgreSQL backends of the bench database used so far, read from
    /proc (a local server, readable by this user); None when it cannot be read. With the
    app's own CPU time it says what a push costs whatever else the machine runs."""

    def __init__(self, url: str):
        self.name = make_url(url).database
        self.admin = create_engine(postgres_url(), isolation_level="AUTOCOMMIT")
        self.tick = os.sysconf("SC_CLK_TCK")

    def ms(self) -> float | None:
        with self.admin.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": self.name}
            ).scalars()
            total = 0
            try:
                for pid in pids:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, IndexError, ValueError):
                return None
        return total / self.tick * 1000

    def close(self) -> None:
        self.admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
