"""Issue 20's table in one run: every hot endpoint beside the floors it is measured against.

One gunicorn (sync workers) on PostgreSQL serves guideapp plus the floor
endpoints, which are not part of the app:
- bare: a Flask view returning a small JSON object, no database;
- one-read: one indexed SELECT through a pooled SQLAlchemy Core connection;
- one-write: one INSERT + COMMIT through the same pool;
- fixed cost: an authenticated no-op under /api/v1 (login check, request lifecycle, logging,
  metrics, headers; no work of its own).
Each endpoint then runs under wrk for the same seconds, one after another, each right after
a run of its own floor: a share is taken against the floor measured beside it, since this
machine's speed drifts by a fifth within minutes (the floors measured first are shown too).
A second server with the inbox cache switched off and the /me cache switched off
(GUIDEAPP_INBOX_CACHE_BYTES=0, GUIDEAPP_ME_CACHE_BYTES=0) measures the inbox and /me when
every answer is rebuilt.

Data: the demo tenant (its guide has materials, quick replies and a working day's inbox:
_fill_demo_inbox) and a scale
tenant (bench/scale.py) whose heavy guide holds the member card of 200 orders, 30 tags and
20 notes (bench_members' card member), the member search and the sync pull.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from urllib.request import Request, urlopen

from sqlalchemy import text

from bench.bench_members import _prepare_card_member
from bench.bench_scans import WRK_DONE, _load_demo, _server, scan_script
from bench.bench_scans import run_wrk
from bench.common import emit, migrate, scratch_postgres
from bench.scale import PASSWORD, generate_scale_tenant
from guideapp.access import register_access_rules
from guideapp.db import make_engine

APP = "bench.bench_endpoints:make_app()"
NOTHING_KEPT = {"GUIDEAPP_INBOX_CACHE_BYTES": "0", "GUIDEAPP_ME_CACHE_BYTES": "0"}
DEMO_GUIDE = "13800000003"

# (name, floor it is compared with, target share of that floor)
TARGETS = {
    "fixed_cost": ("bare", None),
    "me": ("one_read", 0.70),
    "me_rebuilt": ("one_read", None),  # every answer built: the cache's absence
    "member_card": ("one_read", 0.35),
    "materials": ("one_read", 0.50),
    "quick_replies": ("one_read", 0.50),
    "member_search": ("one_read", 0.50),
    "inbox_kept": ("one_read", None),
    "inbox_rebuilt": ("one_read", 0.25),
    "sync_pull_empty": ("one_read", 0.70),
    "scan_anonymous": ("one_write", 0.50),
}


def make_app():
    """guideapp with coupon_tills' bare and one-write floors, plus one read and an
    authenticated no-op."""
    from bench.coupon_tills import make_app as app_with_floors

    app = app_with_floors()
    floor = make_engine(os.environ["GUIDEAPP_DATABASE_URL"])
    member_id = os.environ["BENCH_MEMBER_ID"]

    @app.route("/bench/one-read")
    def one_read():
        with floor.connect() as conn:
            row = conn.execute(
                text("SELECT id, name, phone FROM members WHERE id = :id"), {"id": member_id}
            ).one()
        return {"id": row.id, "name": row.name}

    @app.route("/api/v1/bench/noop")
    def authenticated_noop():  # the login check and the request lifecycle, nothing else
        return {"ok": True}

    return app


def main(argv: list[str] | None = None) -> int:
    register_access_rules()
    args = _parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is needed (make bench installs it)")
        return 1
    with scratch_postgres("bench_endpoints") as url:
        migrate(url)
        engine = make_engine(url)
        try:
            _load_demo(engine)
            _fill_demo_inbox(engine)
            scale = generate_scale_tenant(
                engine, stores=200, guides_per_store=5, members=args.members, verbose=False
            )
            card_member = _prepare_card_member(engine, scale)
            with engine.begin() as conn:
                conn.execute(
                    text("CREATE TABLE bench_writes (id bigserial PRIMARY KEY, body text)")
                )
                heavy_phone = conn.execute(
                    text("SELECT phone FROM staff WHERE id = :id"), {"id": scale.heavy_guide_id}
                ).scalar_one()
            jobs = tempfile.mkdtemp(prefix="bench-endpoints-")
            env = {"BENCH_MEMBER_ID": card_member, "GUIDEAPP_JOBS_URL": f"sqlite:///{jobs}/jobs.db"}
            results, beside = {}, {}
            with _server(url, args.workers, app=APP, env=env) as port:
                demo = _login(port, DEMO_GUIDE)
                heavy = _login(port, heavy_phone)
                cursor = _cursor(port, heavy)
                paths = _paths(demo, heavy, card_member, cursor)
                for name, (method, path, token, body) in paths.items():
                    if name in TARGETS:
                        beside[name] = _floor_beside(port, paths, name, args)
                    results[name] = _run(port, method, path, token, body, args)
                    _print(name, results[name])
            with _server(url, args.workers, app=APP, env={**env, **NOTHING_KEPT}) as port:
                token = _login(port, DEMO_GUIDE)
                for name, path in (
                    ("inbox_rebuilt", "/api/v1/inbox"),
                    ("me_rebuilt", "/api/v1/me"),
                ):
                    beside[name] = _floor_beside(port, paths, name, args)
                    results[name] = _run(port, "GET", path, token, None, args)
                    _print(name, results[name])
        finally:
            engine.dispose()
    return _emit(results, beside, args)


DEMO_MANAGER = "13800000002"


def _fill_demo_inbox(engine) -> None:
    """A guide's working day, written by the store manager through the service: 8 tasks
    open today (5 members each, the first 3 suggesting a material and a reply), 2 overdue,
    3 in the store's pool for any guide to claim, 5 done."""
    from datetime import timedelta

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from guideapp.db import transaction, utcnow
    from guideapp.materials.models import Material
    from guideapp.members.models import Member
    from guideapp.org.models import Staff
    from guideapp.policy.actor import Actor
    from guideapp.replies.models import QuickReply
    from guideapp.tasks import service
    from guideapp.tasks.models import TASK_RESULTS

    with Session(engine) as session, transaction(session):
        manager = session.scalar(select(Staff).where(Staff.phone == DEMO_MANAGER))
        guide = session.scalar(select(Staff).where(Staff.phone == DEMO_GUIDE))
        actor = Actor.for_staff(manager)
        members = list(
            session.scalars(select(Member.id).where(Member.guide_id == guide.id).limit(40))
        )
        material = session.scalar(select(Material.id).where(Material.level == "hq").limit(1))
        reply = session.scalar(select(QuickReply.id).where(QuickReply.level == "hq").limit(1))
        now = utcnow()

        def write(n, starts, due, *, assigned=True, with_members=True, suggest=False):
            data = {
                "title": f"回访 {n}",
                "brief": "新品到店，邀请老客回店试穿",
                "starts_at": now + timedelta(hours=starts),
                "due_at": now + timedelta(hours=due),
                **({"assignee_ids": [guide.id]} if assigned else {}),
                **({"member_ids": members[n * 5 % 40 : n * 5 % 40 + 5]} if with_members else {}),
                **(
                    {"suggested_material_id": material, "suggested_reply_id": reply}
                    if suggest
                    else {}
                ),
            }
            return service.create_store_task(session, actor=actor, data=data)

        for n in range(8):
            write(n, -2, 8, suggest=n < 3)
        for n in range(2):
            write(8 + n, -30, -2)
        for n in range(3):
            write(10 + n, -1, 8, assigned=False, with_members=False)
        for n in range(5):
            (task,) = write(13 + n, -5, 3, with_members=False)
            service.complete(
                session,
                actor=Actor.for_staff(guide),
                task_id=task.id,
                result=TASK_RESULTS[0],
                note=None,
                proof_url=None,
                done_at=None,
            )


def _floor_beside(port: int, paths: dict, name: str, args) -> dict:
    """The endpoint's floor measured again just before it: this machine's speed drifts by a
    fifth within minutes, so a share is taken against the floor run beside it."""
    floor = TARGETS[name][0]
    run = _run(port, *paths[floor][:2], None, paths[floor][3], args)
    _print(f"  ({floor})", run)
    return run


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_endpoints", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 s per endpoint instead of 10")
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--members", type=int, default=100_000)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (4 if args.quick else 10)
    if args.quick:
        args.members = min(args.members, 20_000)
    return args


def _paths(demo: str, heavy: str, card_member: str, cursor: int) -> dict:
    pull = f"/api/v1/sync/pull?schema_version=3&last_pulled_at={cursor}"
    return {
        "bare": ("GET", "/bench/bare", None, None),
        "one_read": ("GET", "/bench/one-read", None, None),
        "one_write": ("POST", "/bench/one-write", None, '{"order_no":"floor"}'),
        "fixed_cost": ("GET", "/api/v1/bench/noop", demo, None),
        "me": ("GET", "/api/v1/me", demo, None),
        "member_card": ("GET", f"/api/v1/members/{card_member}/card", heavy, None),
        "materials": ("GET", "/api/v1/materials?limit=20", demo, None),
        "quick_replies": ("GET", "/api/v1/quick-replies?limit=20", demo, None),
        "member_search": ("GET", "/api/v1/members?limit=50", heavy, None),
        "inbox_kept": ("GET", "/api/v1/inbox", demo, None),
        "sync_pull_empty": ("GET", pull, heavy, None),
        "scan_anonymous": ("POST", "/api/v1/scans", None, "scan"),
    }


def _script(method: str, path: str, token: str | None, body: str | None) -> str:
    if body == "scan":  # the public scan, anonymous: bench_scans' positions, no recruits
        return scan_script(path, recruit=0.0)
    headers = ['["Content-Type"] = "application/json"']
    if token:
        headers.append(f'["Authorization"] = "Bearer {token}"')
    payload = f"'{body}'" if body else "nil"
    return (
        f'request = function()\n  return wrk.format("{method}", "{path}", '
        f"{{{', '.join(headers)}}}, {payload})\nend\n" + WRK_DONE
    )


def _run(port: int, method: str, path: str, token, body, args) -> dict:
    script = _script(method, path, token, body)
    run_wrk(port, script, 2, 1)  # warm the workers, their pools and caches
    return run_wrk(port, script, args.connections, args.seconds)


def _login(port: int, phone: str) -> str:
    answer = _call(port, "POST", "/api/v1/auth/login", {"phone": phone, "password": PASSWORD})
    return answer["access_token"]


def _cursor(port: int, token: str) -> int:
    """The heavy guide's cursor after a full pull: later pulls find nothing new."""
    body = _call(port, "GET", "/api/v1/sync/pull?schema_version=3&last_pulled_at=null", token=token)
    return body["timestamp"]


def _call(port: int, method: str, path: str, body=None, token=None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=method)
    with urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _print(name: str, run: dict) -> None:
    print(
        f"  {name:<18} {run['rps']:>9,.1f} req/s  p50 {run['p50_ms']:>6.2f} ms  "
        f"p99 {run['p99_ms']:>7.2f} ms  errors {run['errors']}",
        flush=True,
    )


def _emit(results: dict, beside: dict, args) -> int:
    errors = sum(run["errors"] for run in [*results.values(), *beside.values()])
    rows, missed = {}, []
    for name, (floor, target) in TARGETS.items():
        run, base = results[name], beside[name]
        share = round(run["rps"] / base["rps"], 3) if base["rps"] else None
        verdict = "" if target is None else (" met" if share >= target else " MISSED")
        if target is not None and share < target:
            missed.append(name)
        rows[name] = (
            f"{run['rps']:,.0f} req/s, p50 {run['p50_ms']} ms = {share:.0%} of {floor} "
            f"({base['rps']:,.0f} req/s beside it)"
            + (f" (target {target:.0%}{verdict})" if target is not None else "")
        )
    fixed = results["fixed_cost"]["p50_ms"] - beside["fixed_cost"]["p50_ms"]
    emit(
        "endpoints",
        title="Hot endpoints beside the bare, one-read and one-write floors "
        "(gunicorn, PostgreSQL, wrk)",
        target="issue 20's shares of the floors, 0 errors",
        met=errors == 0 and not missed,
        comparison=(
            f"floors: bare {results['bare']['rps']:,.0f}, one-read "
            f"{results['one_read']['rps']:,.0f}, one-write {results['one_write']['rps']:,.0f} "
            f"req/s; fixed cost per authenticated request (no-op vs bare, p50) {fixed:.2f} ms; "
            f"below target: {', '.join(missed) or 'none'}"
        ),
        floors={
            k: f"{results[k]['rps']:,.0f} req/s, p50 {results[k]['p50_ms']} ms"
            for k in ("bare", "one_read", "one_write")
        },
        **rows,
        errors=errors,
        workers=args.workers,
        connections=args.connections,
        seconds_each=args.seconds,
        scale_members=args.members,
    )
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
