"""Benchmark: a guide's member card and member search, in a 100k and a 1M member tenant."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from contextlib import ExitStack, contextmanager
from urllib.parse import urlencode

from flask import Flask
from psycopg.sql import Literal
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from bench.common import emit, migrate, percentiles, scratch_postgres
from bench.scale import PASSWORD, ScaleTenant, find_scale_tenant, generate_scale_tenant
from guideapp.access import register_access_rules
from guideapp import create_app
from guideapp.policy.actor import Actor
from guideapp.config import Config
from guideapp.statements import SLOW_QUERY_LOGS
from guideapp.db import commit, make_engine
from guideapp.members import service
from guideapp.org.models import Staff

CARD_TARGET_MS = 10.0
CARD_ORDERS = 200
CARD_CHANNELS = ("pos", "tmall", "jd", "douyin", "brand_mall")
CARD_TAGS = 30
CARD_NOTES = 20
CARD_POINTS = 50
NAME_QUERY = "王"
# A tenant-sized table read from end to end is what must never happen on a guide's request.
BIG_TABLES = {
    "members",
    "orders",
    "member_tags",
    "bindings",
    "change_log",
    "staff",
    "member_notes",
    "points_entries",
    "stores",
    "auth_sessions",
}
WARMUP = 20
TYPICAL = "typical guide no_filter"  # a guide of store 1 with the tenant's average load


def main(argv: list[str] | None = None) -> int:
    register_access_rules()  # services run in this process, not only behind create_app
    args = _parse_args(argv)
    with ExitStack() as stack:
        small, large = (
            _prepare(stack, members, reuse)
            for members, reuse in (
                (args.small_members, args.reuse_small),
                (args.members, args.reuse_large),
            )
        )
        load_before = os.getloadavg()[0]
        _measure([small, large], args.iterations)
        load_after = os.getloadavg()[0]
        for run in (small, large):
            run["plans"] = _explain_all(run)
    bare = _bare_flask(args.iterations)
    _print_plans(large)
    _emit_card(small, large, bare, load=(load_before, load_after))
    _emit_search(small, large)
    _emit_http(small, large, bare)
    return 0


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_members", description=__doc__)
    parser.add_argument("--members", type=int, default=1_000_000, help="the large tenant")
    parser.add_argument("--small-members", type=int, default=100_000, help="the small tenant")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="100k against 10k members")
    parser.add_argument(
        "--reuse-large",
        metavar="URL",
        help="a database bench.scale filled already (kept afterwards)",
    )
    parser.add_argument("--reuse-small", metavar="URL", help="the same for the small tenant")
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.small_members = 100_000, 10_000
    return args


@contextmanager
def _database(reuse_url: str | None):
    """A scratch database, migrated; or the database the caller filled before."""
    if reuse_url:
        yield reuse_url
        return
    with scratch_postgres("bench_members") as url:
        migrate(url)
        yield url


def _label(members: int) -> str:
    return f"{members // 1_000_000}M" if members >= 1_000_000 else f"{members // 1000}k"


# --- one tenant size ---------------------------------------------------------------


def _prepare(stack: ExitStack, members: int, reuse_url: str | None) -> dict:
    """A database with the scale tenant and the card member; what the timings need."""
    print(f"-- tenant with {members:,} members --", flush=True)
    url = stack.enter_context(_database(reuse_url))
    engine = make_engine(url)
    stack.callback(engine.dispose)
    scale = find_scale_tenant(engine) or generate_scale_tenant(engine, members=members)
    run = {
        "url": url,
        "engine": engine,
        "scale": scale,
        "members": scale.members,
        "label": _label(scale.members),
        "heavy_guide_members": scale.heavy_guide_members,
        "member_id": _prepare_card_member(engine, scale),
        "actor": _actor(engine, scale.heavy_guide_id),
        "typical": _actor(engine, scale.guide_id(scale.guides_per_store + 1)),  # store 1
        "searches": _searches(engine, scale),
    }
    run["typical_members"] = len(_once(engine, _search_call(run["typical"], {}, 200))["items"])
    _check_card(engine, run["actor"], run["member_id"])
    run["card_queries"] = _count_queries(engine, _card_call(run["actor"], run["member_id"]))
    run["http_app"] = stack.enter_context(_http_app(url))
    return run


def _measure(runs: list[dict], iterations: int) -> None:
    """Every timing, alternating between the tenants so background load hits both alike."""
    for run in runs:
        run["samples"] = {}
    _timed(
        runs,
        iterations,
        "card",
        lambda r: _service_timer(r, _card_call(r["actor"], r["member_id"])),
    )
    for name in runs[0]["searches"]:
        _timed(
            runs,
            iterations,
            f"search {name}",
            lambda r, n=name: _service_timer(r, _search_call(r["actor"], r["searches"][n])),
        )
    _timed(
        runs,
        iterations,
        f"search {TYPICAL}",
        lambda r: _service_timer(r, _search_call(r["typical"], {})),
    )
    _timed(
        runs,
        iterations,
        "http card",
        lambda r: _http_timer(r, f"/api/v1/members/{r['member_id']}/card"),
    )
    for name in runs[0]["searches"]:
        _timed(
            runs,
            iterations,
            f"http search {name}",
            lambda r, n=name: _http_timer(r, _search_path(r["searches"][n])),
        )


def _timed(runs: list[dict], iterations: int, label: str, make_timer, rounds: int = 5) -> None:
    """Warm up, then `rounds` rounds of iterations/rounds calls per tenant, interleaved;
    the timings land in run["samples"][label]."""
    timers = [make_timer(run) for run in runs]
    for timer in timers:
        timer(WARMUP)
    for run in runs:
        run["samples"][label] = []
    for _ in range(rounds):
        for run, timer in zip(runs, timers, strict=True):
            run["samples"][label] += timer(max(1, iterations // rounds))
    print(
        "   "
        + f"{label:<34}"
        + "  ".join(f"{run['label']} p50 {_p50(run['samples'][label])} ms" for run in runs),
        flush=True,
    )


def _prepare_card_member(engine, scale: ScaleTenant) -> str:
    """Member 0 (bound to the heavy guide) gets 200 orders, 30 tags, 20 notes, 50 points."""
    member_id = scale.member_id(0)
    params = {
        "m": member_id,
        "t": scale.tenant_id,
        "g": scale.heavy_guide_id,
        "s": scale.store_id(0),
        "orders": CARD_ORDERS,
        "channels": list(CARD_CHANNELS),
        "tags": [scale.tag_id(i // 8, i % 8) for i in range(CARD_TAGS)],
        "notes": CARD_NOTES,
        "points": CARD_POINTS,
    }
    with engine.begin() as conn:
        for table in ("orders", "member_tags", "member_notes", "points_entries"):
            conn.execute(text(f"DELETE FROM {table} WHERE member_id = :m"), params)
        for sql in _CARD_SQL:
            conn.execute(text(sql), params)
        conn.execute(text("ANALYZE orders"))
    return member_id


_CARD_SQL = [
    """INSERT INTO orders (id, tenant_id, member_id, channel, order_no, store_id, guide_id,
                           amount_fen, refunded_fen, items, ordered_at, created_at)
       SELECT md5(:m || '/card-order/' || i), :t, :m,
              (CAST(:channels AS text[]))[1 + i % 5], 'CARD-' || :m || '-' || i, :s, :g,
              10000 + (i * 7919) % 90000, 0,
              json_build_array(json_build_object('name', '跑鞋', 'qty', 1)),
              now() - make_interval(days => i * 3), now() - make_interval(days => i * 3)
       FROM generate_series(1, CAST(:orders AS int)) i""",
    """INSERT INTO member_tags (id, tenant_id, member_id, tag_id, source, created_at)
       SELECT md5(:m || '/' || tag_id), :t, :m, tag_id, 'manual', now()
       FROM unnest(CAST(:tags AS text[])) tag_id""",
    """INSERT INTO member_notes (id, tenant_id, member_id, author_id, body, created_at,
                                 updated_at)
       SELECT md5(:m || '/note/' || i), :t, :m, :g, '回访记录 ' || i || '：试穿跑鞋，下周再来',
              now() - make_interval(days => i), now() - make_interval(days => i)
       FROM generate_series(1, CAST(:notes AS int)) i""",
    """INSERT INTO points_entries (id, tenant_id, member_id, kind, points, reason, created_at)
       SELECT md5(:m || '/points/' || i), :t, :m, 'earn', 100 + i, 'order', now()
       FROM generate_series(1, CAST(:points AS int)) i""",
    """UPDATE members SET last_order_at = now() - interval '3 days', stage = 'regular',
                          first_order_at = now() - interval '600 days',
                          last_contact_at = now() - interval '1 day'
       WHERE id = :m""",
]


def _actor(engine, staff_id: str) -> Actor:
    with Session(engine) as session:
        return Actor.for_staff(session.get(Staff, staff_id))


def _searches(engine, scale: ScaleTenant) -> dict[str, dict]:
    """The guide's everyday searches; the phone tail is one of the heavy guide's members."""
    with engine.connect() as conn:
        tail = conn.execute(
            text("SELECT phone_tail FROM members WHERE guide_id = :g ORDER BY id LIMIT 1 OFFSET 7"),
            {"g": scale.heavy_guide_id},
        ).scalar_one()
    return {
        "no_filter": {},
        "phone_tail": {"phone_tail": tail},
        "birthday_this_month": {"birthday_this_month": True},
        "silent_30_days": {"silent_days": 30},
        "name_q": {"q": NAME_QUERY},
    }


def _check_card(engine, actor: Actor, member_id: str) -> dict:
    card = _once(engine, _card_call(actor, member_id))
    tags = sum(len(group["tags"]) for group in card["tags"])
    if card["orders"] != CARD_ORDERS or tags != CARD_TAGS:
        raise RuntimeError(f"card fixture wrong: {card['orders']} orders, {tags} tags")
    return card


def _card_call(actor: Actor, member_id: str):
    return lambda session: service.card(session, actor=actor, member_id=member_id)


def _search_call(actor: Actor, filters: dict, limit: int = 50):
    return lambda session: service.search(session, actor=actor, limit=limit, cursor=None, **filters)


def _once(engine, call):
    """One call in its own session, committed as a request commits.

    A rollback would also clear psycopg's prepared statements on the connection, and with
    them the generic plans PostgreSQL uses for a statement from its 11th execution on.
    """
    with Session(engine) as session:
        result = call(session)
        commit(session)
        return result


def _service_timer(run: dict, call):
    """n calls of the service function, each in its own session: n timings in ms."""

    def timer(n: int) -> list[float]:
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            _once(run["engine"], call)
            samples.append((time.perf_counter() - started) * 1000)
        return samples

    return timer


@contextmanager
def _statements(engine):
    """Collect the (statement, parameters) a block sends: through SQLAlchemy, and the
    statements run past it on the DBAPI connection (guideapp/statements.py), which
    report to the slow-query hook instead."""
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    kept = SLOW_QUERY_LOGS.get(engine.pool)
    SLOW_QUERY_LOGS[engine.pool] = lambda sql, _ms, bound: seen.append((sql, bound))
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
        if kept is None:
            SLOW_QUERY_LOGS.pop(engine.pool, None)
        else:
            SLOW_QUERY_LOGS[engine.pool] = kept


def _count_queries(engine, call) -> int:
    with _statements(engine) as seen:
        _once(engine, call)
    return sum(1 for statement, _ in seen if statement.lstrip().upper().startswith("SELECT"))


# --- plans ---------------------------------------------------------------------------


def _explain_all(run: dict) -> dict:
    actor, engine = run["actor"], run["engine"]
    calls = {"card": _card_call(actor, run["member_id"]), TYPICAL: _search_call(run["typical"], {})}
    calls.update({name: _search_call(actor, f) for name, f in run["searches"].items()})
    return {name: _explain_call(engine, call) for name, call in calls.items()}


def _explain_call(engine, call) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) every SELECT the call sends, as a custom plan (the values
    inlined: what the first executions on a connection get) and as the generic plan a
    prepared statement settles on; big-table sequential scans are flagged."""
    with _statements(engine) as seen:
        _once(engine, call)
    plans = []
    with engine.connect() as conn:
        for statement, parameters in seen:
            if statement.lstrip().upper().startswith("SELECT"):
                plans.append(_explain_statement(conn, statement, parameters))
        conn.rollback()
    return plans


def _explain_statement(conn, statement: str, parameters: dict) -> dict:
    custom = _plan_text(conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters))
    generic = _explain_generic(conn, statement, parameters)
    return {
        "statement": statement,
        "custom": custom,
        "generic": generic,
        "custom_ms": _execution_ms(custom),
        "generic_ms": _execution_ms(generic),
        "custom_buffers": _buffers(custom),
        "generic_buffers": _buffers(generic),
        "seq_scans": _big_seq_scans(custom + generic),
    }


def _explain_generic(conn, statement: str, parameters: dict) -> str:
    """The generic plan: PREPARE with $n, force_generic_plan, EXPLAIN EXECUTE with literals."""
    names: list[str] = []

    def number(match) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    raw = conn.connection.dbapi_connection
    conn.exec_driver_sql("PREPARE bench_plan AS " + re.sub(r"%\((\w+)\)s", number, statement))
    try:
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        values = ", ".join(Literal(parameters[n]).as_string(raw) for n in names)
        return _plan_text(
            conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_plan({values})".replace("%", "%%")
            )
        )
    finally:
        conn.exec_driver_sql("RESET plan_cache_mode")
        conn.exec_driver_sql("DEALLOCATE bench_plan")


def _plan_text(rows) -> str:
    return "\n".join(row[0] for row in rows)


def _execution_ms(plan: str) -> float:
    match = re.search(r"Execution Time: ([\d.]+) ms", plan)
    return float(match.group(1)) if match else float("nan")


def _buffers(plan: str) -> int:
    """Shared buffers (hit + read) of the top plan node: the pages one call touches."""
    match = re.search(r"Buffers: shared((?: \w+=\d+)+)", plan)
    if not match:
        return 0
    return sum(
        int(n) for kind, n in re.findall(r"(\w+)=(\d+)", match.group(1)) if kind in {"hit", "read"}
    )


def _big_seq_scans(plan: str) -> list[str]:
    return sorted({t for t in re.findall(r"Seq Scan on (\w+)", plan) if t in BIG_TABLES})


def _plan_path(plan: str) -> str:
    """The scans of a plan with the rows each returned, and the rows filtered out."""
    scans = re.findall(
        r"((?:Bitmap Index|Index Only|Index|Seq) Scan (?:using|on) \w+)"
        r".*?actual time=[\d.]+\.\.[\d.]+ rows=(\d+)",
        plan,
    )
    removed = sum(int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", plan))
    path = "; ".join(f"{scan} → {int(rows):,} rows" for scan, rows in scans)
    return f"{path}; {removed:,} rows filtered out" if removed else path


def _members_plan(run: dict, name: str) -> dict:
    """The page query of a search (the one that reads members)."""
    return next(
        p
        for p in run["plans"][name]
        if "FROM members" in p["statement"] and "ORDER BY members.id" in p["statement"]
    )


def _print_plans(run: dict) -> None:
    print(f"-- query plans at {run['label']} members (EXPLAIN ANALYZE, BUFFERS) --")
    for name, plans in run["plans"].items():
        shown = (
            [p for p in plans if p["seq_scans"]] if name == "card" else [_members_plan(run, name)]
        )
        for plan in shown:
            flag = f"  SEQ SCAN on {', '.join(plan['seq_scans'])}" if plan["seq_scans"] else ""
            print(
                f"[{name}] custom plan {plan['custom_ms']} ms / {plan['custom_buffers']} "
                f"buffers, generic plan {plan['generic_ms']} ms / "
                f"{plan['generic_buffers']} buffers{flag}"
            )
            print("  " + _one_line(plan["statement"]))
            print("  custom:\n    " + plan["custom"].replace("\n", "\n    "))
            print("  generic:\n    " + plan["generic"].replace("\n", "\n    "))
    print(f"calls with a big-table sequential scan: {_flagged(run) or 'none'}", flush=True)


def _one_line(statement: str) -> str:
    return " ".join(statement.split())


def _flagged(run: dict) -> list[str]:
    return sorted(
        name for name, plans in run["plans"].items() if any(p["seq_scans"] for p in plans)
    )


# --- HTTP ----------------------------------------------------------------------------


@contextmanager
def _http_app(url: str):
    """The real app on this database, a test client, and a guide's bearer token."""
    app = create_app(Config(DATABASE_URL=url, LOG_LEVEL="WARNING"))
    try:
        yield app
    finally:
        app.extensions["guideapp"]["engine"].dispose()


def _http_timer(run: dict, path: str):
    app = run["http_app"]
    if "http_headers" not in run:
        run["http_client"] = app.test_client()
        run["http_headers"] = {"Authorization": f"Bearer {_login(run)}"}
    return lambda n: _time_http(run["http_client"], path, run["http_headers"], n)


def _login(run: dict) -> str:
    with Session(run["engine"]) as session:
        phone = session.get(Staff, run["scale"].heavy_guide_id).phone
    response = run["http_client"].post(
        "/api/v1/auth/login", json={"phone": phone, "password": PASSWORD}
    )
    if response.status_code != 200:
        raise RuntimeError(f"login failed: {response.status_code} {response.get_data(True)}")
    return response.get_json()["access_token"]


def _search_path(filters: dict) -> str:
    return "/api/v1/members?" + urlencode({k: _query_value(v) for k, v in filters.items()})


def _query_value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _time_http(client, path: str, headers: dict | None, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.get_data(True)}")
    return samples


def _bare_flask(iterations: int) -> list[float]:
    """The floor: a Flask app that only answers {"ok": true}, through the same test client."""
    app = Flask("bare")

    @app.get("/ok")
    def ok():
        return {"ok": True}

    client = app.test_client()
    _time_http(client, "/ok", None, WARMUP)
    return _time_http(client, "/ok", None, iterations)


# --- results -------------------------------------------------------------------------


def _p50(samples: list[float]) -> float:
    return percentiles(samples)["p50"]


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")


def _emit_card(small: dict, large: dict, bare: list[float], load: tuple) -> None:
    http_p50, base = _p50(large["samples"]["http card"]), _p50(bare)
    emit(
        "members.card",
        title=(
            f"Member card: {CARD_ORDERS} orders over {len(CARD_CHANNELS)} channels, "
            f"{CARD_TAGS} tags, {CARD_NOTES} notes, {CARD_POINTS} points entries"
        ),
        target=f"HTTP p50 < {CARD_TARGET_MS:g} ms (server time)",
        tenant_members=large["members"],
        service_ms=percentiles(large["samples"]["card"]),
        http_ms=percentiles(large["samples"]["http card"]),
        bare_flask_ms=percentiles(bare),
        queries_per_card=large["card_queries"],
        service_p50_by_tenant_ms={
            run["label"]: _p50(run["samples"]["card"]) for run in (small, large)
        },
        http_over_bare_p50=_ratio(http_p50, base),
        load_average_1m={
            "before": round(load[0], 2),
            "after": round(load[1], 2),
            "cores": os.cpu_count(),
        },
        met=http_p50 < CARD_TARGET_MS,
        comparison=(
            f"HTTP card p50 {http_p50} ms = {_ratio(http_p50, base)}x a bare Flask "
            f"endpoint ({base} ms); service p50 {_p50(small['samples']['card'])} ms "
            f"at {small['label']} vs {_p50(large['samples']['card'])} ms at "
            f"{large['label']} members{_load_caveat(load)}"
        ),
    )


def _load_caveat(load: tuple) -> str:
    busiest = max(load)
    if busiest <= (os.cpu_count() or 1):
        return ""
    return (
        f" (load average up to {busiest:.1f} on {os.cpu_count()} cores: other processes "
        f"took CPU from the run; compare p50 of quieter runs)"
    )


def _emit_search(small: dict, large: dict) -> None:
    figures, steady, custom = {}, [], []
    for name in [*large["searches"], TYPICAL]:
        a, b = (_p50(run["samples"][f"search {name}"]) for run in (small, large))
        plans = [_members_plan(run, name) for run in (small, large)]
        if name != TYPICAL:  # the typical guide owns 10x more in the large tenant
            steady.append(_ratio(b, a))
            custom.append(_material_ratio(plans[1]["custom_ms"], plans[0]["custom_ms"]))
        figures[f"{name}: p50 ms"] = {small["label"]: a, large["label"]: b, "ratio": _ratio(b, a)}
        for kind in ("custom", "generic"):
            figures[f"{name}: {kind} plan"] = {
                run["label"]: f"{plan[kind + '_ms']} ms, {plan[kind + '_buffers']} buffers"
                for run, plan in zip((small, large), plans, strict=True)
            }
        figures[f"{name}: {large['label']} custom plan reads"] = _plan_path(plans[1]["custom"])
    emit(
        "members.search",
        title=(
            f"Guide member search (service call), first page of 50: the heavy guide has "
            f"{large['heavy_guide_members']:,} members in both tenants "
            f"({small['label']} and {large['label']} members)"
        ),
        target="cost independent of the tenant's size (ratios ~1)",
        **figures,
        typical_guide_members={r["label"]: r["typical_members"] for r in (small, large)},
        big_table_seq_scans=_flagged(large) or "none",
        met=max(steady) < 1.5 and max(custom) < 1.5,
        comparison=(
            f"heavy guide, worst {large['label']}/{small['label']} ratio: p50 "
            f"{max(steady)}x, custom plan {max(custom)}x (plans over 1 ms; 1.0 = "
            f"independent of the tenant's size)"
        ),
    )


def _material_ratio(large_ms: float, small_ms: float) -> float:
    """The ratio, or 1.0 when both plans run under a millisecond (noise, not cost)."""
    return _ratio(large_ms, small_ms) if max(large_ms, small_ms) >= 1.0 else 1.0


def _emit_http(small: dict, large: dict, bare: list[float]) -> None:
    base = _p50(bare)
    figures = {"bare_flask_ms": percentiles(bare)}
    for label in ["card", *(f"search {name}" for name in large["searches"])]:
        a, b = (_p50(run["samples"][f"http {label}"]) for run in (small, large))
        figures[f"{label} p50 ms"] = {
            small["label"]: a,
            large["label"]: b,
            "x bare": _ratio(b, base),
        }
    card = _p50(large["samples"]["http card"])
    emit(
        "members.http",
        title="The same requests through the HTTP API (Flask test client, server time)",
        target=f"card p50 < {CARD_TARGET_MS:g} ms",
        **figures,
        comparison=(
            f"bare Flask {base} ms; card {card} ms ({_ratio(card, base)}x) at "
            f"{large['label']} members"
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
