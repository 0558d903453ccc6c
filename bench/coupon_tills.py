"""The redemption half of bench_coupons: two tills under wrk beside the floor endpoints.

Two "tills" (two store managers' tokens, one per wrk thread) each redeem distinct
pre-issued coupon codes, and every Nth request of each sends the code the other till
sends at about that moment (a deliberate duplicate: one of the two must get the 409).
Beside them on the same gunicorn, in the same run: the one-write floor (one INSERT +
COMMIT through a pooled SQLAlchemy Core connection, an endpoint of this module's app, not
of guideapp) and an authenticated `GET /api/v1/me`. Afterwards the database is asked how
many coupons were redeemed twice.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.request import Request, urlopen

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bench.bench_scans import WRK_DONE, _server, run_wrk
from bench.scale import PASSWORD
from guideapp.db import make_engine

APP = "bench.coupon_tills:make_app()"
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
"""
FLOOR_LUA = (
    """
request = function()
  return wrk.format("POST", "/bench/one-write", {["Content-Type"] = "application/json"},
    '{"order_no":"floor","amount_fen":15000}')
end
"""
    + WRK_DONE
)


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


def run_tills(url: str, engine, scale, template_id: str, args) -> dict:
    """The floor, GET /me and the two tills, each for args.seconds; then the counts."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_writes (id bigserial PRIMARY KEY, body text)"))
    with tempfile.TemporaryDirectory() as scratch:
        env = {"GUIDEAPP_JOBS_URL": f"sqlite:///{scratch}/jobs.db"}
        tills = _tills(engine, scale, template_id, Path(scratch), args)
        with _server(url, args.workers, app=APP, env=env) as port:
            for till in tills:
                till["token"] = _login(port, till.pop("phone"))
            floor = _wrk(port, lambda offset: FLOOR_LUA, args)
            me = _wrk(port, lambda offset: ME_LUA % {"token": tills[0]["token"]} + WRK_DONE, args)
            redeem = _wrk(port, lambda offset: TILL_LUA % _lua(tills, args, offset), args)
            counted = _settled_redemptions(engine)
    return {
        "floor": floor,
        "me": me,
        "redeem": redeem,
        "counted": counted,
        "doubles": _double_redemptions(engine),
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
