"""Helpers shared by the benchmarks: scratch databases, percentiles, machine facts, RESULT lines."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time

from sqlalchemy import create_engine, text

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RESULT_PREFIX = "RESULT "


def postgres_url() -> str:
    """The server benchmarks create their scratch databases on."""
    return os.environ.get("GUIDEAPP_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def scratch_postgres(prefix: str):
    """A brand-new database next to postgres_url(), dropped afterwards; yields its URL."""
    from guideapp.migrations import scratch_postgres_database

    return scratch_postgres_database(postgres_url(), prefix)


def migrate(url: str) -> None:
    """Bring the database at url to the newest schema with the project's own migrations."""
    from alembic import command

    from guideapp.migrations import alembic_config

    command.upgrade(alembic_config({}, url=url), "head")


def percentiles(samples_ms: list[float]) -> dict:
    """p50 / p95 / p99 of timings in milliseconds, rounded to microseconds."""
    if not samples_ms:
        return {"p50": None, "p95": None, "p99": None}
    if len(samples_ms) == 1:
        only = round(samples_ms[0], 3)
        return {"p50": only, "p95": only, "p99": only}
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {"p50": round(cuts[49], 3), "p95": round(cuts[94], 3), "p99": round(cuts[98], 3)}


def machine_info() -> dict:
    """What the figures were measured on."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "postgres": _postgres_version(),
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _postgres_version() -> str:
    engine = create_engine(postgres_url())
    try:
        with engine.connect() as conn:
            return conn.execute(text("SHOW server_version")).scalar_one()
    except Exception as exc:  # noqa: BLE001 - the report still runs without a server
        return f"unavailable ({type(exc).__name__})"
    finally:
        engine.dispose()


def wait_until_up(url: str, *, seconds: float, pause: float = 0.2) -> bool:
    """Whether `url` answered (any HTTP answer) within `seconds`: a server the bench started."""
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return True
        except OSError:
            time.sleep(pause)
    return False


def emit(name: str, **figures) -> None:
    """Print a readable block and one `RESULT {json}` line that bench.run_all collects.

    Conventional keys: `title` (heading), `target` (what the figure must reach),
    `comparison` (one sentence: this figure against its baseline); the rest are figures,
    nested one level at most (e.g. card_ms={"p50": ..., "p95": ...}).
    """
    print(f"== {figures.get('title') or name} ==")
    for key, value in figures.items():
        if key == "title":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        print(f"  {key:<30} {value}")
    print(
        RESULT_PREFIX
        + json.dumps({"name": name, **figures}, ensure_ascii=False, default=str, sort_keys=False),
        flush=True,
    )


def bare_flask_p50(iterations: int = 200) -> float:
    """p50 ms of a bare Flask endpoint through the test client: the floor every figure is
    compared with."""
    from flask import Flask

    bare = Flask("bare")
    bare.get("/ping")(lambda: {"ok": True})
    client, samples = bare.test_client(), []
    for _ in range(iterations):
        started = time.perf_counter()
        client.get("/ping")
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 3)
