"""Benchmark: a 100,000-row members import, set-based, against a naive row-by-row import;
and the same import through its job (`flask jobs work-off` in a child process: rows/s and
the worker's peak RSS), at 100,000 rows and, with --job-rows or GUIDEAPP_BENCH_IMPORT_JOB_ROWS,
1,000,000 rows, to show memory does not grow with the file."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.common import migrate, scratch_postgres
from guideapp.access import register_access_rules
from guideapp.wiring import connect_reactions
from guideapp.config import PROJECT_ROOT
from guideapp.db import make_engine, transaction
from guideapp.demo import load_demo
from guideapp.members.binding import bind
from guideapp.members.identity import ensure_member
from guideapp.members.imports import run_import
from guideapp.jobs.models import Job
from guideapp.members.models import Binding, Member
from guideapp.org.models import Staff, Tenant
from guideapp.changelog import ChangeLogEntry

TARGET_ROWS_PER_S = 5000
HEADER = [
    "手机号",
    "姓名",
    "性别",
    "生日",
    "unionid",
    "导购手机号",
    "会员等级",
    "积分",
    "来源渠道",
    "入会时间",
]


def main(argv: list[str] | None = None) -> int:
    register_access_rules()  # services run in this process, not only behind create_app
    connect_reactions()  # ...and react as there: an import's recruits book commissions
    args = _parse_args(argv)
    with scratch_postgres("bench_import") as url:
        migrate(url)
        engine = make_engine(url)
        try:
            result = run(engine, args)
        finally:
            engine.dispose()
    _print_result(result)
    return 0 if result["failed"] == 0 and result["rows_per_s"] >= TARGET_ROWS_PER_S else 1


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_import", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--update-share",
        type=float,
        default=0.10,
        help="share of rows that update existing members (default 0.10)",
    )
    parser.add_argument("--naive-rows", type=int, default=2_000)
    parser.add_argument(
        "--job-rows",
        type=int,
        action="append",
        help="rows of each import run through the job (repeatable; default 100,000, and "
        "GUIDEAPP_BENCH_IMPORT_JOB_ROWS=1000000 adds a run of that size)",
    )
    args = parser.parse_args(argv)
    if args.job_rows is None:
        extra = int(os.environ.get("GUIDEAPP_BENCH_IMPORT_JOB_ROWS") or 0)
        args.job_rows = [100_000] + ([extra] if extra else [])
    return args


def run(engine, args) -> dict:
    with Session(engine) as session, transaction(session):
        load_demo(session, PROJECT_ROOT / "fixtures" / "demo")
    with Session(engine) as session:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.slug == "stride"))
        guide_phones = sorted(
            session.scalars(
                select(Staff.phone).where(
                    Staff.tenant_id == tenant_id, Staff.role == "guide", Staff.state == "active"
                )
            )
        )
    updates = int(args.rows * args.update_share)
    _seed_existing(engine, tenant_id, updates)  # the members the file's update rows find
    content = members_csv(args.rows, updates, guide_phones)
    with Session(engine) as session:
        started = time.perf_counter()
        with transaction(session):
            report = run_import(
                session,
                tenant_id=tenant_id,
                kind="members",
                filename="bench.csv",
                content=content,
                dry_run=False,
            )
        seconds = time.perf_counter() - started
        counts = {
            name: session.scalar(select(func.count()).select_from(model))
            for name, model in (
                ("members", Member),
                ("bindings", Binding),
                ("change_log", ChangeLogEntry),
            )
        }
    naive_seconds = _naive(engine, tenant_id, args.naive_rows, guide_phones)
    job_runs = [
        _through_job(engine, tenant_id, rows, args.update_share, guide_phones, prefix=f"{17 + i}")
        for i, rows in enumerate(args.job_rows)
    ]
    rows_per_s = args.rows / seconds
    naive_rows_per_s = args.naive_rows / naive_seconds
    return {
        "rows": args.rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows_per_s),
        "naive_rows_per_s": round(naive_rows_per_s, 1),
        "ratio": round(rows_per_s / naive_rows_per_s, 1),
        "imported": report["imported"],
        "updated": report["updated"],
        "failed": report["failed"],
        "csv_bytes": len(content),
        "naive_rows": args.naive_rows,
        "naive_seconds": round(naive_seconds, 2),
        "job_runs": job_runs,
        **counts,
    }


def _through_job(
    engine, tenant_id: str, rows: int, update_share: float, guide_phones, *, prefix: str
) -> dict:
    """The same kind of file as the in-request run (the same share of update rows), written
    to a temp dir as it is generated, enqueued by the CLI, run by a `jobs work-off` child
    whose peak RSS is reported by a small launcher (see _PEAK_RSS)."""
    updates = int(rows * update_share)
    _seed_existing(engine, tenant_id, updates, prefix=prefix)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "members.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as out:
            _write_members(out, rows, updates, guide_phones, prefix=prefix)
        env = {
            **os.environ,
            "GUIDEAPP_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "GUIDEAPP_JOBS_URL": f"sqlite:///{scratch}/jobs.db",
            "GUIDEAPP_JOBS_NAME": "bench-import",
            "GUIDEAPP_UPLOAD_DIR": f"{scratch}/uploads",
            "GUIDEAPP_IMPORT_MAX_ROWS": str(rows + 10),
            "GUIDEAPP_LOG_LEVEL": "WARNING",
        }
        flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
        enqueued = subprocess.run(
            [*flask, "import", "members", str(path), "--enqueue"],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        started = time.perf_counter()
        profile = os.environ.get("GUIDEAPP_BENCH_IMPORT_PROFILE")  # a py-spy output path
        spy = ["py-spy", "record", "--idle", "-r", "50", "-f", "speedscope", "-o"]
        command = [*spy, f"{profile}-{rows}.json", "--", *flask] if profile else flask
        peak = Path(scratch) / "peak_rss"
        launcher = [sys.executable, "-c", _PEAK_RSS, str(peak)]
        subprocess.run([*launcher, *command, "jobs", "work-off"], env=env, cwd=PROJECT_ROOT)
        seconds = time.perf_counter() - started
        peak_kib = int(peak.read_text())
        job_id = enqueued.stdout.split(" queued as job ")[1].split()[0]
        with Session(engine) as session:
            job = session.get_one(Job, job_id)
            result, state = job.result or {}, job.state
            # the job's own time: from its first unit to its last, without the worker's start
            own = (job.finished_at - job.started_at).total_seconds() if job.finished_at else 0
        return {
            "rows": rows,
            "csv_bytes": path.stat().st_size,
            "state": state,
            "seconds": round(seconds, 1),
            "rows_per_s": round(rows / seconds),
            "job_seconds": round(own, 1),
            "job_rows_per_s": round(rows / own) if own else 0,
            "peak_rss_mb": round(peak_kib / 1024, 1),
            "imported": result.get("imported"),
            "failed": result.get("failed"),
        }


# A child's ru_maxrss counts the pages it shared with its parent before exec: forked from
# this process (which holds the in-request import), a worker would report this process's
# RSS. A small launcher forks the worker instead and writes its peak (KiB) to argv[1].
_PEAK_RSS = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _phone(n: int, prefix: str = "15") -> str:
    return f"{prefix}{n:09d}"


def _seed_existing(engine, tenant_id: str, count: int, prefix: str = "15") -> None:
    """Bare members (phone only), so the timed file's update rows fill names and bind them."""
    if not count:
        return
    phones = (_phone(n, prefix) for n in range(count))
    content = ("phone\n" + "\n".join(phones) + "\n").encode()
    with Session(engine) as session, transaction(session):
        run_import(
            session,
            tenant_id=tenant_id,
            kind="members",
            filename="seed.csv",
            content=content,
            dry_run=False,
        )


def members_csv(rows: int, updates: int, guide_phones: list[str]) -> bytes:
    """Rows 0..updates-1 update the seeded members; the rest are new; all bound to guides."""
    out = io.StringIO()
    _write_members(out, rows, updates, guide_phones)
    return out.getvalue().encode("utf-8-sig")


def _write_members(out, rows: int, updates: int, guide_phones: list[str], prefix="15") -> None:
    rng = random.Random(2026)
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for n in range(rows):
        birthday = f"{rng.randint(1960, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        joined = f"2025/{rng.randint(1, 12)}/{rng.randint(1, 28)} {rng.randint(9, 21)}:30"
        writer.writerow(
            [
                f"{prefix}{n:09d}",
                f"会员{n}",
                rng.choice(["男", "女", ""]),
                birthday,
                f"oBench{prefix}{n:020d}" if n % 3 == 0 else "",
                rng.choice(guide_phones),
                rng.choice(["普通", "银卡", "金卡"]),
                rng.choice([0, 0, 100, 2500]),
                rng.choice(["门店", "天猫", "小程序"]),
                joined,
            ]
        )


def _naive(engine, tenant_id: str, rows: int, guide_phones: list[str]) -> float:
    """The same work one member at a time: ensure_member + binding.bind, then one commit."""
    rng = random.Random(7)
    with Session(engine) as session:
        guides = {
            g.phone: g for g in session.scalars(select(Staff).where(Staff.phone.in_(guide_phones)))
        }
        started = time.perf_counter()
        with transaction(session):
            for n in range(rows):
                member, _ = ensure_member(
                    session,
                    tenant_id=tenant_id,
                    source_channel="import",
                    phone=f"16{n:09d}",
                    name=f"逐行{n}",
                )
                bind(
                    session, member=member, guide=guides[rng.choice(guide_phones)], reason="import"
                )
        return time.perf_counter() - started


def _print_result(result: dict) -> None:
    met = "met" if result["rows_per_s"] >= TARGET_ROWS_PER_S else "NOT met"
    print(f"""
members import benchmark (PostgreSQL, scratch database)
  file:        {result["rows"]:,} rows, {result["csv_bytes"] / 1e6:.1f} MB CSV
  set-based:   {result["seconds"]:.2f} s including commit -> {result["rows_per_s"]:,} rows/s
               imported {result["imported"]:,}, updated {result["updated"]:,}, \
failed {result["failed"]:,}
  naive:       {result["naive_rows"]:,} rows in {result["naive_seconds"]:.2f} s -> \
{result["naive_rows_per_s"]:,} rows/s (ensure_member + bind per row)
  ratio:       {result["ratio"]}x; target {TARGET_ROWS_PER_S:,} rows/s {met}
  afterwards:  {result["members"]:,} members, {result["bindings"]:,} bindings, \
{result["change_log"]:,} change-log rows
""")
    for run in result["job_runs"]:
        print(
            f"  as a job:    {run['rows']:,} rows ({run['csv_bytes'] / 1e6:.0f} MB) in "
            f"{run['seconds']:.1f} s -> {run['rows_per_s']:,} rows/s (the job itself: "
            f"{run['job_seconds']:.1f} s -> {run['job_rows_per_s']:,} rows/s), worker peak RSS "
            f"{run['peak_rss_mb']:.0f} MB ({run['state']}; imported {run['imported']}, "
            f"failed {run['failed']})"
        )
    keys = ("rows", "seconds", "rows_per_s", "naive_rows_per_s", "ratio")
    summary = {k: result[k] for k in keys}
    for run in result["job_runs"]:
        summary[f"job_{run['rows']}_rows_per_s"] = run["rows_per_s"]
        summary[f"job_{run['rows']}_own_rows_per_s"] = run["job_rows_per_s"]
        summary[f"job_{run['rows']}_peak_rss_mb"] = run["peak_rss_mb"]
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
