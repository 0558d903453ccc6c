"""Benchmark: the public scan endpoint under load, as a ratio to a bare Flask endpoint."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.common import emit, migrate, percentiles, scratch_postgres, wait_until_up
from guideapp.access import register_access_rules
from guideapp.config import PROJECT_ROOT
from guideapp.db import make_engine, transaction

FIXTURES = PROJECT_ROOT / "fixtures" / "demo"
CODE = "stride-lbs"
# City centres (WGS-84 as phones report them): most hold demo stores, a few do not (fallback).
CITIES = [
    (31.23, 121.47),
    (30.27, 120.16),
    (32.05, 118.78),
    (31.30, 120.62),
    (39.91, 116.40),
    (39.13, 117.20),
    (36.65, 117.00),
    (23.13, 113.27),
    (22.54, 114.06),
    (24.47, 118.09),
    (30.57, 104.07),
    (30.59, 114.31),
    (34.26, 108.94),
]
SPREAD_DEG = 0.1  # positions up to ~10 km from the centre
# Share of scans carrying a typed phone (an unverified lead, stored on the scan). Scans
# identified by a WeChat code: bench/bench_identified_scans.py (against the fake WeChat).
RECRUIT_SHARE = 0.2
LUA = """
local cities = {%(cities)s}
local counter = 0
tid = 0  -- set per thread by setup()
local threads = {}
function setup(thread) table.insert(threads, thread); thread:set("tid", #threads) end
function init(args) math.randomseed(%(seed)d + tid) end
request = function()
  counter = counter + 1
  local c = cities[math.random(#cities)]
  local lat = c[1] + (math.random() * 2 - 1) * %(spread)f
  local lng = c[2] + (math.random() * 2 - 1) * %(spread)f
  local extra = ""
  if math.random() < %(recruit)f then
    extra = string.format(',"lead_phone":"136%%08d"', (tid * 1000000 + counter) %% 100000000)
  end
  local body = string.format('{"code":"%(code)s","lat":%%.6f,"lng":%%.6f%%s}', lat, lng, extra)
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, body)
end
"""  # + WRK_DONE, after formatting

# The summary line run_wrk reads, for scripts that need no counts of their own.
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors":%d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def make_app():
    """The app the server runs: guideapp plus a bare endpoint (no database) to compare with."""
    from guideapp import create_app

    app = create_app()

    @app.route("/bench/bare", methods=["GET", "POST"])
    def bare():
        return {"ok": True}

    return app


def main(argv: list[str] | None = None) -> int:
    register_access_rules()  # services run in this process, not only behind create_app
    args = _parse_args(argv)
    with scratch_postgres("bench_scans") as url:
        migrate(url)
        engine = make_engine(url)
        try:
            _load_demo(engine)
            with _server(url, args.workers) as port:
                runs = {path: _load(port, path, args) for path in ("/bench/bare", "/api/v1/scans")}
            outcomes = _outcomes(engine)
        finally:
            engine.dispose()
    bare, scan = runs["/bench/bare"], runs["/api/v1/scans"]
    ratio = round(scan["rps"] / bare["rps"], 3) if bare["rps"] else None
    errors = bare["errors"] + scan["errors"]
    emit(
        "scan_endpoint",
        title="Public scan endpoint under load vs a bare Flask endpoint",
        target="no errors; the scan endpoint's throughput as a share of a bare endpoint's",
        met=errors == 0 and sum(outcomes.values()) >= scan["requests"],
        comparison=f"the scan endpoint serves {ratio:.0%} of the requests/s of a bare Flask "
        f"endpoint on the same gunicorn ({args.workers} sync workers)",
        rps_ratio=ratio,
        p50_ratio=round(scan["p50_ms"] / bare["p50_ms"], 2) if bare["p50_ms"] else None,
        scan={k: scan[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        bare={k: bare[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        errors=errors,
        load=scan["tool"],
        workers=args.workers,
        connections=args.connections,
        seconds_each=args.seconds,
        recruit_share=RECRUIT_SHARE,
        outcomes=outcomes,
    )
    return 0 if errors == 0 else 1


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scans", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 s per endpoint instead of 20")
    parser.add_argument("--workers", type=int, default=min(3, max(2, os.cpu_count() or 2)))
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="fixed request count for the Python load generator (no wrk)",
    )
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (5 if args.quick else 20)
    args.requests = args.requests or (1500 if args.quick else 6000)
    return args


def _load_demo(engine) -> None:
    from guideapp.demo import load_demo

    with Session(engine) as session, transaction(session):
        load_demo(session, FIXTURES)


class _server:
    """gunicorn on a free loopback port, rate limits opened wide, stopped on exit."""

    def __init__(
        self,
        url: str,
        workers: int,
        app: str = "bench.bench_scans:make_app()",
        env: dict | None = None,
    ):
        self.url, self.workers, self.app, self.extra_env = url, workers, app, env or {}

    def __enter__(self) -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {
            **os.environ,
            "GUIDEAPP_DATABASE_URL": self.url,
            "GUIDEAPP_LOG_LEVEL": "WARNING",
            "GUIDEAPP_SCAN_RATE_PER_CODE": "1000000000",
            "GUIDEAPP_SCAN_RATE_PER_ADDRESS": "1000000000",
            **self.extra_env,
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--worker-class",
                "sync",
                "--log-level",
                "warning",
                self.app,
            ],
            cwd=PROJECT_ROOT,
            env=env,
        )
        if wait_until_up(f"http://127.0.0.1:{self.port}/healthz", seconds=60, pause=0.3):
            return self.port
        self.__exit__()
        raise RuntimeError("gunicorn did not come up within 60 s")

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _load(port: int, path: str, args) -> dict:
    _python_load(port, path, requests=100, connections=2)  # warm the workers and the pools
    if shutil.which("wrk"):
        return _wrk(port, path, args)
    return _python_load(port, path, requests=args.requests, connections=args.connections)


def scan_script(path: str, *, recruit: float = RECRUIT_SHARE) -> str:
    """wrk's script for scans of the demo code from around the cities, `recruit` of them
    leaving a phone number."""
    cities = ", ".join(f"{{{lat}, {lng}}}" for lat, lng in CITIES)
    return (
        LUA
        % {
            "cities": cities,
            "seed": random.randrange(1 << 30),
            "spread": SPREAD_DEG,
            "recruit": recruit,
            "code": CODE,
            "path": path,
        }
        + WRK_DONE
    )


def _wrk(port: int, path: str, args) -> dict:
    return {"tool": "wrk", **run_wrk(port, scan_script(path), args.connections, args.seconds)}


def run_wrk(port: int, script: str, connections: int, seconds: int, path: str = "") -> dict:
    """wrk -t2 on loopback with the Lua `script` (its done() prints a WRK {json} line)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t",
                "2",
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--timeout",
                "10s",
                "-s",
                handle.name,
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(handle.name).unlink()
    raw = json.loads(next(line for line in out.splitlines() if line.startswith("WRK "))[4:])
    return {
        **{k: v for k, v in raw.items() if not k.endswith("_us")},  # a script's own counts
        "requests": raw["requests"],
        "errors": raw["errors"],
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
    }


def _python_load(port: int, path: str, *, requests: int, connections: int) -> dict:
    """A fixed number of requests over keep-alive connections from a thread pool."""
    rng, lock = random.Random(), threading.Lock()
    samples, errors, local = [], [0], threading.local()

    def one(i: int) -> None:
        if not hasattr(local, "conn"):
            local.conn = HTTPConnection("127.0.0.1", port, timeout=10)
        lat, lng = rng.choice(CITIES)
        body = {
            "code": CODE,
            "lat": lat + rng.uniform(-SPREAD_DEG, SPREAD_DEG),
            "lng": lng + rng.uniform(-SPREAD_DEG, SPREAD_DEG),
        }
        if rng.random() < RECRUIT_SHARE:
            body["lead_phone"] = f"136{(os.getpid() * 100003 + i) % 100_000_000:08d}"
        started = time.perf_counter()
        local.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = local.conn.getresponse()
        response.read()
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            samples.append(elapsed)
            errors[0] += response.status >= 400

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - started
    cuts = percentiles(samples)
    return {
        "tool": "python threads",
        "requests": requests,
        "errors": errors[0],
        "rps": round(requests / seconds, 1),
        "p50_ms": cuts["p50"],
        "p99_ms": cuts["p99"],
    }


def _outcomes(engine) -> dict:
    from guideapp.scans.models import Scan

    with Session(engine) as session:
        return dict(
            session.execute(select(Scan.outcome, func.count()).group_by(Scan.outcome)).all()
        )


if __name__ == "__main__":
    sys.exit(main())
