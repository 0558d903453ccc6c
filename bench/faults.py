"""`make faults`: guideapp under faults, each a scripted scenario with one PASS/FAIL line.

A gunicorn worker SIGKILLed mid sync push, the job worker SIGKILLed mid import and mid
publish, PostgreSQL restarted under load, Redis restarted under the job worker, clients that
drop the answer and retry, the uploads disk full. After each, the database must equal a
fault-free run of the same requests (bench/fault_harness.py: counts and sums of members,
orders, ledger entries, tasks per campaign and store, change-log rows, and no change stamped
above its tenant's counter). Everything runs on servers of its own (PostgreSQL on 8250,
Redis on 8260, gunicorn on 8200 by default), stopped and removed at the end.

    .venv/bin/python -m bench.faults                 # every scenario; records bench/RESULTS.md
    .venv/bin/python -m bench.faults --only disk_full --no-record
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from datetime import datetime, timezone

from bench.common import emit, machine_info
from bench.fault_harness import Harness
from bench.fault_scenarios import SCENARIOS, Broken
from guideapp.access import register_access_rules


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    names = args.only or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"no scenario {', '.join(unknown)}; have: {', '.join(SCENARIOS)}")
        return 2
    register_access_rules()
    started = time.perf_counter()
    lines: dict[str, str] = {}
    harness = Harness(pg_port=args.pg_port, redis_port=args.redis_port, http_port=args.port)
    try:
        print(f"servers up in {time.perf_counter() - started:.1f} s", flush=True)
        for name in names:
            lines[name] = run_scenario(harness, name)
            print(lines[name], flush=True)
    finally:
        harness.close()
    seconds = round(time.perf_counter() - started, 1)
    failed = [n for n, line in lines.items() if line.startswith("FAIL")]
    print(f"{len(lines) - len(failed)} of {len(lines)} scenarios passed in {seconds} s")
    if args.record and not args.only:  # a partial run records nothing
        _record(lines, seconds, failed, argv)
    return 1 if failed else 0


def run_scenario(harness: Harness, name: str) -> str:
    started = time.perf_counter()
    try:
        checked = SCENARIOS[name](harness)
    except Broken as broken:
        return f"FAIL {name}: {broken}"
    except Exception as error:  # noqa: BLE001 - a crash of the scenario is its failure
        traceback.print_exc()
        return f"FAIL {name}: {type(error).__name__}: {error}"
    return f"PASS {name}: {checked} ({time.perf_counter() - started:.1f} s)"


def _record(lines: dict, seconds: float, failed: list, argv) -> None:
    from bench.run_all import RESULTS_MD, record_section

    result = {
        "name": "faults",
        "title": "Faults: kills, restarts, dropped answers, a full disk",
        "target": "every scenario PASS: nothing lost, nothing doubled, the database equal to "
        "a fault-free run of the same requests",
        "met": not failed,
        "comparison": f"{len(lines) - len(failed)} of {len(lines)} scenarios passed; each "
        "compared with the same requests run without the fault on a copy of the same database",
        **{name: line.split(": ", 1)[1] if ": " in line else line for name, line in lines.items()},
    }
    emit(**result)
    record_section(
        "faults",
        {
            "command": "make faults (python -m bench.faults"
            + (" " + " ".join(argv) if argv else "")
            + ")",
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": seconds,
            "returncode": 1 if failed else 0,
            "machine": machine_info(),
            "results": [result],
            **({"failure": f"{', '.join(failed)} failed"} if failed else {}),
        },
    )
    print(f"recorded the faults section of {RESULTS_MD.name}")


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--only", action="append", metavar="NAME", help="one scenario; repeatable")
    parser.add_argument("--port", type=int, default=8200, help="gunicorn's port")
    parser.add_argument("--pg-port", type=int, default=8250, help="the own PostgreSQL's port")
    parser.add_argument("--redis-port", type=int, default=8260, help="the own Redis's port")
    parser.add_argument(
        "--no-record", dest="record", action="store_false", help="leave bench/RESULTS.md alone"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
