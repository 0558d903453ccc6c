"""Benchmark: coupons at brand scale.

(a) HQ's bulk issue of one coupon to every member of a segment (1,000,000 by default;
    GUIDEAPP_BENCH_COUPON_MEMBERS or --members to scale down) through the job
    (coupons.bulk_issue: keyset batches, set-based, one commit per batch), beside a
    row-by-row baseline measured in the same run: issuance.issue_one per member, each in its
    own transaction, on a sample, extrapolated.
(b) Redemption under wrk from two "tills" (two store managers' tokens, one per wrk thread),
    each redeeming distinct pre-issued coupon codes, with a share of deliberate duplicates
    (a code the other till is redeeming at about the same moment), against the one-write
    floor endpoint (one INSERT + COMMIT through a pooled SQLAlchemy Core connection) on the
    same gunicorn in the same run; then double redemptions are counted in the database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import Request, urlopen

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bench.bench_scans import _server, run_wrk
from bench.common import emit, migrate, scratch_postgres
from bench.scale import PASSWORD, _md5, generate_scale_tenant
from guideapp.access import register_access_rules
from guideapp.db import make_engine, make_sessionmaker, transaction
from guideapp.members.models import TIERS

APP = "bench.bench_coupons:make_app()"
TILL_LUA = """
local tills = {%(tills)s}
local threads = {}
tid = 0
function setup(thread) table.insert(threads, thread); thread:set("tid", #threads) end
function init(args)
  till = tills[(tid - 1) %% #tills + 1]
  other = tills[tid %% #tills + 1]
  own, theirs = {}, {}
  for line in io.lines(till.codes) do table.insert(own, line) end
  for line in io.lines(other.codes) do table.insert(theirs, line) end
  ok, dup, bad, sent = 0, 0, 0, 0
  phase = (tid - 1) * math.floor(%(every)d / 2)
end
request = function()
  sent = sent + 1
  local at = %(offset)d + sent - 1
  local code = own[at %% #own + 1]
  -- A duplicate: the code the other till sends at about this moment (the tills take their
  -- turns at different phases, so the other till still sends it too).
  if (sent + phase) %% %(every)d == 0 then code = theirs[at %% #theirs + 1] end
  local body = string.format(
    '{"codes":["%%s"],"channel":"pos","order_no":"T%%d-%(run)s-%%d","amount_fen":15000,' ..
    '"store_id":"%%s"}', code, tid, sent, till.store)
  return wrk.format("POST", "/api/v1/coupons/redeem", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. till.token}, body)
end
response = function(status, headers, body)
  if status == 200 then ok = ok + 1 elseif status == 409 then dup = dup + 1 else bad = bad + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local o, d, b = 0, 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); d = d + t:get("dup"); b = b + t:get("bad") end
  io.write(string.format('WRK {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"errors":%%d,"ok":%%d,"conflicts":%%d,"other":%%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + b, o, d, b))
end
"""
ME_LUA = """
request = function()
  return wrk.format("GET", "/api/v1/me", {["Authorization"] = "Bearer %(token)s"})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"errors":%%d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.status + e.connect + e.read + e.write + e.timeout))
end
"""
FLOOR_LUA = """
request = function()
  return wrk.format("POST", "/bench/one-write", {["Content-Type"] = "application/json"},
    '{"order_no":"floor","amount_fen":15000}')
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors":%d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def make_app():
    """guideapp plus the floor endpoints, outside the app: bare, and one INSERT + COMMIT."""
    from flask import request

    from guideapp import create_app

    app = create_app()
    floor = make_engine(os.environ["GUIDEAPP_DATABASE_URL"])

    @app.route("/bench/bare", methods=["GET", "POST"])
    def bare():
        return {"ok": True}

    @app.route("/bench/one-write", methods=["POST"])
    def one_write():
        with floor.begin() as conn:
            conn.execute(
                text("INSERT INTO bench_writes (body) VALUES (:body)"),
                {"body": request.get_data(as_text=True)[:200]},
            )
        return {"ok": True}

    return app


def main(argv: list[str] | None = None) -> int:
    register_access_rules()
    args = _parse_args(argv)
    load = {"before": _load_average()}
    with scratch_postgres("bench_coupons") as url:
        migrate(url)
        engine = make_engine(url)
        try:
            scale = generate_scale_tenant(engine, members=args.members, verbose=True)
            with engine.begin() as conn:
                conn.execute(
                    text("CREATE TABLE bench_writes (id bigserial PRIMARY KEY, body text)")
                )
            bulk = _bulk_issue(engine, scale, args)
            baseline = _row_by_row(engine, scale, args)
            with tempfile.TemporaryDirectory() as scratch:
                env = {"GUIDEAPP_JOBS_URL": f"sqlite:///{scratch}/jobs.db"}
                tills = _tills(engine, scale, bulk["template_id"], Path(scratch), args)
                with _server(url, args.workers, app=APP, env=env) as port:
                    for till in tills:
                        till["token"] = _login(port, till.pop("phone"))
                    floor = _wrk(port, lambda offset: FLOOR_LUA, args)
                    me = _wrk(port, lambda offset: ME_LUA % {"token": tills[0]["token"]}, args)
                    redeem = _wrk(port, lambda offset: TILL_LUA % _lua(tills, args, offset), args)
                    counted = _settled_redemptions(engine)
            doubles = _double_redemptions(engine)
        finally:
            engine.dispose()
    load["after"] = _load_average()
    _report_bulk(bulk, baseline, args, load)
    return _report_redeem(floor, me, redeem, counted, doubles, args, load, bulk["ok"])


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_coupons", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k members, 5 s of wrk each")
    parser.add_argument("--members", type=int, default=None)
    parser.add_argument("--sample", type=int, default=None, help="members issued row by row")
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duplicate-every", type=int, default=10, help="every Nth request")
    args = parser.parse_args(argv)
    default = 100_000 if args.quick else 1_000_000
    args.members = args.members or int(os.environ.get("GUIDEAPP_BENCH_COUPON_MEMBERS", default))
    args.sample = args.sample or (500 if args.quick else 2_000)
    args.seconds = args.seconds or (5 if args.quick else 10)
    return args


def _hq_actor(session: Session, scale):
    from guideapp.org.models import Staff
    from guideapp.policy.actor import Actor

    return Actor.for_staff(session.get_one(Staff, _md5(f"{scale.key}/hq")))


def _template(session: Session, actor, name: str) -> str:
    from guideapp.coupons.service import create_template

    data = {
        "name": name,
        "kind": "amount_off",
        "amount_off_fen": 500,
        "valid_days": 30,
        "store_ids": [],
        "region_ids": [],
        "channels": [],
    }
    return create_template(session, actor=actor, data=data).id


def _bulk_issue(engine, scale, args) -> dict:
    """One template to every member of the segment (all tiers: the whole tenant), through
    the job run by a Runner as a worker runs it; timed from its first unit to its end."""
    from guideapp.coupons import bulk
    from guideapp.coupons.models import Coupon
    from guideapp.jobs.models import Job
    from guideapp.jobs.runner import Runner, Settings, run_to_end

    with Session(engine) as session, transaction(session):
        actor = _hq_actor(session, scale)
        template_id = _template(session, actor, "百万会员券")
        job, _ = bulk.start_bulk_issue(
            session,
            actor=actor,
            template_id=template_id,
            data={"segment": {"tiers": list(TIERS)}},
            enqueue=False,
        )
        job_id = job.id
    started = time.perf_counter()
    run_to_end(Runner(make_sessionmaker(engine), Settings(lease_seconds=3600)), job_id)
    seconds = time.perf_counter() - started
    with Session(engine) as session:
        job = session.get_one(Job, job_id)
        coupons, holders = session.execute(
            select(func.count(), func.count(func.distinct(Coupon.member_id))).where(
                Coupon.template_id == template_id
            )
        ).one()
        changes = session.scalar(
            text("SELECT count(*) FROM change_log WHERE table_name = 'coupons'")
        )
    result = job.result or {}
    print(f"  bulk issue: {job.state} in {seconds:.1f} s: {result}", flush=True)
    ok = (
        job.state == "succeeded"
        and result.get("issued") == coupons == holders == args.members
        and result.get("members") == args.members
    )
    return {
        "ok": ok,
        "template_id": template_id,
        "state": job.state,
        "seconds": round(seconds, 1),
        "coupons": coupons,
        "change_log_rows": changes,
    }


def _row_by_row(engine, scale, args) -> dict:
    """issue_one per member, each its own transaction (lock, issue, commit), on a sample."""
    from guideapp.coupons import issuance
    from guideapp.members.models import Member

    with Session(engine) as session, transaction(session):
        actor = _hq_actor(session, scale)
        template_id = _template(session, actor, "逐个发放券")
        sample = session.scalars(
            select(Member.id)
            .where(Member.tenant_id == scale.tenant_id)
            .order_by(Member.id)
            .limit(args.sample)
        ).all()
    how = issuance.Issue(source="staff", key=lambda m: f"row:{m}", issued_by=actor.staff_id)
    started = time.perf_counter()
    for member_id in sample:
        with Session(engine, expire_on_commit=False) as session, transaction(session):
            template = issuance.lock_template(
                session, tenant_id=scale.tenant_id, template_id=template_id
            )
            issuance.issue_one(session, template=template, member_id=member_id, how=how)
    seconds = time.perf_counter() - started
    rate = len(sample) / seconds
    return {
        "sample": len(sample),
        "seconds": round(seconds, 1),
        "per_s": round(rate, 1),
        "would_take_s": round(args.members / rate, 1),
    }


def _tills(engine, scale, template_id: str, scratch: Path, args) -> list[dict]:
    """Two tills (stores 0 and 1, their managers), each with its own half of the codes."""
    from guideapp.coupons.models import Coupon
    from guideapp.org.models import Staff

    per_till = args.per_till = min(args.members // 2, 100_000)
    with Session(engine) as session:
        codes = session.scalars(
            select(Coupon.code).where(Coupon.template_id == template_id).limit(2 * per_till)
        ).all()
        tills = []
        for number in range(2):
            store_id = scale.store_id(number)
            phone = session.scalar(
                select(Staff.phone).where(Staff.store_id == store_id, Staff.role == "store_manager")
            )
            path = scratch / f"till{number}.txt"
            path.write_text("\n".join(codes[number::2]) + "\n", encoding="ascii")
            tills.append({"store": store_id, "phone": phone, "codes": str(path)})
    return tills


def _login(port: int, phone: str) -> str:
    body = json.dumps({"phone": phone, "password": PASSWORD}).encode()
    request = Request(
        f"http://127.0.0.1:{port}/api/v1/auth/login",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["access_token"]


def _lua(tills: list[dict], args, offset: int) -> dict:
    """The tills' script; each run its own order numbers, from `offset` in the code lists."""
    rows = ", ".join(
        '{store = "%s", token = "%s", codes = "%s"}' % (t["store"], t["token"], t["codes"])
        for t in tills
    )
    return {
        "tills": rows,
        "every": args.duplicate_every,
        "run": os.urandom(4).hex(),
        "offset": offset,
    }


def _wrk(port: int, script, args) -> dict:
    """A short warm-up run (workers, their pools), on codes far from the measured run's."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed for the redemption run (make bench installs it)")
    run_wrk(port, script(args.per_till // 2), 2, 1)  # half way down each till's codes
    return run_wrk(port, script(0), args.connections, args.seconds)


def _settled_redemptions(engine, quiet_s: float = 1.5) -> int:
    """Redemptions once their count stops moving (wrk stops with requests in flight)."""

    def count() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM coupon_redemptions")).scalar_one()

    seen, since = count(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.2)
        now = count()
        if now != seen:
            seen, since = now, time.monotonic()
    return seen


def _double_redemptions(engine) -> dict:
    with engine.connect() as conn:
        doubled = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT coupon_id FROM coupon_redemptions "
                "WHERE reversed_at IS NULL GROUP BY coupon_id HAVING count(*) > 1) twice"
            )
        ).scalar_one()
        used = conn.execute(text("SELECT count(*) FROM coupons WHERE state = 'used'")).scalar_one()
    return {"coupons_redeemed_twice": doubled, "coupons_used": used}


def _load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _report_bulk(bulk: dict, baseline: dict, args, load: dict) -> None:
    members = args.members
    emit(
        "coupons_bulk_issue",
        title=f"Bulk issue of one coupon to {members:,} members of a segment through the job",
        target="set-based through the job; seconds, beside a row-by-row baseline",
        met=bulk["ok"],
        comparison=f"the job issued {bulk['coupons']:,} coupons in {bulk['seconds']} s "
        f"({members / max(bulk['seconds'], 0.001):,.0f}/s); issue_one per member, one "
        f"transaction each, did {baseline['per_s']}/s on a sample of {baseline['sample']} "
        f"(would take {baseline['would_take_s']} s)",
        members=members,
        seconds=bulk["seconds"],
        coupons=bulk["coupons"],
        change_log_rows=bulk["change_log_rows"],
        job_state=bulk["state"],
        row_by_row=baseline,
        load_average_1_5_15=load,
    )


def _report_redeem(floor, me, redeem, counted, doubles, args, load, bulk_ok) -> int:
    ratio = round(redeem["rps"] / floor["rps"], 3) if floor["rps"] else None
    lost = max(0, redeem["ok"] - counted)
    clean = (
        doubles["coupons_redeemed_twice"] == 0
        and redeem["errors"] == 0
        and floor["errors"] == 0
        and me["errors"] == 0
        and lost == 0
        and doubles["coupons_used"] == counted
    )
    emit(
        "coupons_redeem",
        title="Redemption from two tills under wrk vs the one-write floor endpoint",
        target=">= 40% of the one-write floor; 0 double redemptions counted afterwards",
        met=clean and ratio is not None and ratio >= 0.4,
        comparison=f"redemption serves {ratio:.0%} of the one-write floor's requests/s on the "
        f"same gunicorn ({args.workers} sync workers, wrk -t2 -c{args.connections} "
        f"-d{args.seconds}s); {doubles['coupons_redeemed_twice']} coupons redeemed twice; "
        f"an authenticated GET /api/v1/me alone serves {me['rps'] / floor['rps']:.0%} of it",
        rps_ratio=ratio,
        redeem={k: redeem[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        one_write_floor={k: floor[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        authenticated_me={k: me[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        answers={"200": redeem["ok"], "409": redeem["conflicts"], "other": redeem["other"]},
        duplicate_every=args.duplicate_every,
        redemptions_stored=counted,
        **doubles,
        errors=redeem["errors"] + floor["errors"] + me["errors"],
        load_average_1_5_15=load,
    )
    return 0 if clean and bulk_ok else 1


if __name__ == "__main__":
    sys.exit(main())
