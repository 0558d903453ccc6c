"""`make load`: a day in the life against two gunicorn instances on PostgreSQL (locust).

A scratch database gets the demo tenant and a scaled tenant (bench/scale.py); two gunicorn
instances on two loopback ports serve it (plus the bare endpoint of bench_scans.make_app),
a job worker runs the jobs, and locust (bench/load_users.py) plays guides, consumers, HQ
and managers against the list of both URLs. Afterwards: the figures per endpoint, the
checks that no write was lost between the instances, a section in bench/RESULTS.md.
`--soak`: ten minutes at a steady rate, p99 and the workers' memory at the start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench import load_checks
from bench.common import emit, migrate, scratch_postgres, wait_until_up
from bench.load_report import (
    FLOOR,
    burst_figures,
    endpoint_figures,
    memory_figures,
    soak_windows,
)
from bench.run_all import record_run
from bench.scale import PASSWORD, generate_scale_tenant
from guideapp.access import register_access_rules
from guideapp.config import PROJECT_ROOT
from guideapp.db import make_engine, transaction

FIXTURES = PROJECT_ROOT / "fixtures" / "demo"
DEMO_CODE = {"code": "stride-lbs", "near": [31.23, 121.47]}  # the demo poster, Shanghai
LOOPBACK = "127.0.0.1"
STORES, MEMBERS = 400, 100_000  # --scale 1; --scale 10 is the real-brand size
CAST_STORES = 6  # stores whose manager and guides log in (10 guides each)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_signal)  # a killed run still cleans up
    register_access_rules()
    started = time.perf_counter()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="guideapp-load-") as tmp:
        url = stack.enter_context(scratch_postgres("load"))
        engine = make_engine(url)
        stack.callback(engine.dispose)
        scale = _fill(engine, url, args)
        servers = stack.enter_context(Servers(url, Path(tmp), args))
        cast = _cast(engine, scale, servers.hosts, Path(tmp), args)
        print(f"locust: {args.users} users for {args.seconds} s against {servers.hosts}")
        memory = stack.enter_context(load_checks.MemorySampler(servers.masters))
        out = _locust(cast, Path(tmp), args)
        memory.stop()
        checks = load_checks.after_the_day(engine, cast, out["tally"])
    return _report(args, cast, out, memory.samples, checks, time.perf_counter() - started)


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--soak", action="store_true", help="10 minutes at a steady rate")
    parser.add_argument("--seconds", type=int, help="locust's run time (default 90; soak 600)")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help=f"tenant size: {STORES} stores and {MEMBERS:,} members times this (10: 4,000 / 1M)",
    )
    parser.add_argument("--users", type=int, default=50, help="locust users (default 50)")
    parser.add_argument("--spawn-rate", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers per instance")
    parser.add_argument("--ports", default="8101,8102", help="one instance per port, loopback")
    parser.add_argument(
        "--jobs-url",
        default=os.environ.get("GUIDEAPP_LOAD_JOBS_URL", "redis://127.0.0.1:6379/7"),
        help="the job queue (redis://.../db, or sqlite:///path)",
    )
    parser.add_argument("--no-record", action="store_true", help="leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (600 if args.soak else 90)
    args.ports = [int(port) for port in args.ports.split(",")]
    return args


def _stop_on_signal(signum, frame):
    raise SystemExit(128 + signum)


# --- the tenant --------------------------------------------------------------------------


def _fill(engine, url: str, args):
    from guideapp.demo import load_demo

    print(f"scratch database: migrate, demo, scale x{args.scale:g}", flush=True)
    migrate(url)
    with Session(engine) as session, transaction(session):
        load_demo(session, FIXTURES)
    return generate_scale_tenant(
        engine,
        stores=max(CAST_STORES + 1, round(STORES * args.scale)),
        members=round(MEMBERS * args.scale),
        verbose=True,
    )


def _cast(engine, scale, hosts: list[str], tmp: Path, args) -> dict:
    """Who plays: the scale tenant's HQ, the first stores' managers and guides (the heavy
    guide among them), its new LBS poster beside the demo's; content HQ writes first."""
    with engine.connect() as conn:
        hq = conn.execute(
            text("SELECT phone FROM staff WHERE tenant_id = :t AND role = 'hq_admin'"),
            {"t": scale.tenant_id},
        ).scalar_one()
        stores = []
        for index in range(CAST_STORES + 1):  # the last one is left alone for the checks
            store_id = scale.store_id(index)
            rows = conn.execute(
                text(
                    "SELECT id, phone, role FROM staff WHERE store_id = :s AND state = 'active' "
                    "ORDER BY role, id"
                ),
                {"s": store_id},
            ).all()
            code, lat, lng = conn.execute(
                text("SELECT code, lat, lng FROM stores WHERE id = :s"), {"s": store_id}
            ).one()
            stores.append(
                {
                    "id": store_id,
                    "code": code,
                    "near": [lat, lng],
                    "manager": next(r.phone for r in rows if r.role == "store_manager"),
                    "guide_ids": [r.id for r in rows if r.role == "guide"],
                    "guide_phones": [r.phone for r in rows if r.role == "guide"],
                }
            )
    guides = _guides_in_turn(stores[:-1], heavy=scale.heavy_guide_id)
    content = load_checks.hq_writes_content(hosts[0], hq, PASSWORD, near=stores[0]["near"])
    import_csv = tmp / "members.csv"
    import_rows = load_checks.write_member_file(import_csv, stores, rows=round(2000 * args.scale))
    cast = {
        "mode": "soak" if args.soak else "day",
        "seconds": args.seconds,
        "hosts": hosts,
        "password": PASSWORD,
        "hq": hq,
        "stores": stores[:-1],
        "checker": stores[-1],
        "workers": args.workers,
        "guides": guides,
        "codes": [DEMO_CODE, content["code"]],
        "import_csv": str(import_csv),
        "import_rows": import_rows,
        "tenant_id": scale.tenant_id,
        "scale": {"stores": scale.stores, "members": scale.members, "guides": scale.stores * 10},
    }
    (tmp / "cast.json").write_text(json.dumps(cast, ensure_ascii=False), encoding="utf-8")
    return cast


def _guides_in_turn(stores: list[dict], *, heavy: str) -> list[str]:
    """Guides' phones one store after another (the first users spread over every store),
    the heavy guide (2,000 members) first."""
    turns = []
    for store in stores:
        pairs = zip(store["guide_ids"], store["guide_phones"], strict=True)
        for turn, (guide_id, phone) in enumerate(pairs):
            turns.append((-1 if guide_id == heavy else turn, phone))
    return [phone for _, phone in sorted(turns)]


# --- the processes -----------------------------------------------------------------------


class Servers:
    """Two gunicorn instances (gunicorn.conf.py, N workers each) and one job worker, each
    in its own process group, all stopped on exit whatever happened."""

    def __init__(self, url: str, tmp: Path, args):
        self.url, self.tmp, self.args = url, tmp, args
        self.processes: list[subprocess.Popen] = []
        self.hosts = [f"http://{LOOPBACK}:{port}" for port in args.ports]

    def env(self, name: str) -> dict:
        jobs = self.args.jobs_url
        metrics = self.tmp / f"prometheus-{name}"
        metrics.mkdir(exist_ok=True)  # gunicorn.conf.py makes its own; the job worker does not
        return {
            **os.environ,
            "GUIDEAPP_DATABASE_URL": self.url,
            "GUIDEAPP_JOBS_URL": jobs,
            "GUIDEAPP_JOBS_NAME": load_checks.JOBS_NAME,
            "GUIDEAPP_REDIS_URL": jobs if jobs.startswith("redis") else "",
            "GUIDEAPP_LOG_LEVEL": "WARNING",
            "GUIDEAPP_UPLOAD_DIR": str(self.tmp / "uploads"),
            # locust stands where the load balancer would: its X-Forwarded-For is the phone's
            "GUIDEAPP_PROXY_HOPS": "1",
            # each instance its own metrics files (gunicorn.conf.py empties them at start)
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        }

    def __enter__(self) -> Servers:
        try:
            for port in self.args.ports:
                self._start(
                    f"gunicorn:{port}",
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "--config",
                        "gunicorn.conf.py",
                        "--bind",
                        f"{LOOPBACK}:{port}",
                        "--workers",
                        str(self.args.workers),
                        "--log-level",
                        "warning",
                        # not the shared default path: two instances (and other gunicorns
                        # on this machine) would take the same control socket
                        "--no-control-socket",
                        "bench.bench_scans:make_app()",
                    ],
                )
            self._start("jobs", [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker"])
            for host in self.hosts:
                if not wait_until_up(f"{host}/healthz", seconds=60, pause=0.3):
                    raise RuntimeError(f"{host} did not come up within 60 s")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, name: str, command: list[str]) -> None:
        print(f"start {name}", flush=True)
        self.processes.append(
            subprocess.Popen(command, cwd=PROJECT_ROOT, env=self.env(name), start_new_session=True)
        )

    @property
    def masters(self) -> list[int]:
        return [p.pid for p in self.processes[: len(self.args.ports)]]

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
        if self.args.jobs_url.startswith("redis"):
            load_checks.empty_queue(self.args.jobs_url)


def _locust(cast: dict, tmp: Path, args) -> dict:
    """locust headless, bounded: its own run time, then at most a minute more."""
    out = tmp / "locust-out.json"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(PROJECT_ROOT / "bench" / "load_users.py"),
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        f"{args.seconds}s",
        "--stop-timeout",
        "10",
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    env = {**os.environ, "LOAD_CAST": str(tmp / "cast.json"), "LOAD_OUT": str(out)}
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True)
    try:
        process.wait(timeout=args.seconds + 120)
    except subprocess.TimeoutExpired:
        print("locust overran its time: stopped")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if not out.exists():
        raise RuntimeError(f"locust exited {process.returncode} without writing its figures")
    return json.loads(out.read_text(encoding="utf-8"))


# --- the report --------------------------------------------------------------------------


def _report(args, cast: dict, out: dict, memory: list[dict], checks: dict, seconds: float) -> int:
    figures = endpoint_figures(out["samples"], args.seconds, cast["hosts"])
    # failed requests (and failed in-run checks) plus exceptions inside a user's task
    errors = sum(row["errors"] for row in figures["endpoints"].values()) + out["task_errors"]
    floor, api = figures["endpoints"].get(FLOOR, {}), figures["api"]
    results = []
    met = errors == 0 and checks["ok"]
    if args.soak:
        windows = soak_windows(out["samples"], args.seconds)
        rss = memory_figures(memory)
        met = met and rss["growth_pct"] < 10
        results.append(
            dict(
                name="soak",
                title=f"Soak: {args.seconds / 60:g} minutes at a steady rate, two instances",
                target="zero errors; the workers' memory (RSS) grows under 10% from start to end",
                met=met,
                comparison=f"p99 {windows['first']['p99']} ms in the first minute, "
                f"{windows['last']['p99']} ms in the last; the workers' RSS {rss['start_mb']} MB "
                f"at the start, {rss['end_mb']} MB at the end ({rss['growth_pct']:+.1f}%)",
                errors=errors,
                first_minute=windows["first"],
                last_minute=windows["last"],
                rss=rss,
            )
        )
    results.append(
        dict(
            name="day",
            title=("The soak's mix" if args.soak else "A day in the life")
            + f": {args.users} users, {args.seconds} s, {len(cast['hosts'])} instances x "
            f"{args.workers} workers",
            target="zero errors; every write read back through the other instance",
            met=met,
            comparison=f"after the ramp-up, the API answered {api['rps']} requests/s at p50 "
            f"{api['p50']} ms, p99 {api['p99']} ms; the bare Flask endpoint on the same workers "
            f"in the same run: p50 {floor.get('p50')} ms, p99 {floor.get('p99')} ms",
            errors=errors,
            api=api,
            floor=floor,
            ramp_up_s=figures["ramp_up_s"],
            **({} if args.soak else burst_figures(out["samples"], args.seconds)),
            per_instance=figures["per_instance"],
            tenant=cast["scale"],
            checks=checks["figures"],
            failures=out["failures"] or "none",
        )
    )
    results.append(
        dict(
            name="endpoints",
            title="Per endpoint (after the ramp-up; logins and first syncs: all of them): "
            "requests, requests/s, p50 / p95 / p99 ms, errors",
            **{
                endpoint: {k: row[k] for k in ("requests", "rps", "p50", "p95", "p99", "errors")}
                for endpoint, row in sorted(figures["endpoints"].items())
            },
        )
    )
    for result in results:
        emit(**result)
    if not args.no_record:
        command = " ".join(["python -m bench.load", *sys.argv[1:]])
        record_run("load_soak" if args.soak else "load", command, results, seconds, 0 if met else 1)
    if not met:
        print(f"FAILED: {errors} errors; checks: {checks['problems'] or 'ok'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
