"""Figures from the samples bench/load_users.py wrote: per endpoint, per instance, per minute."""

from __future__ import annotations

from collections import defaultdict

from bench.common import percentiles

FLOOR = "GET /bench/bare (floor)"
# Once per user, not part of the steady day: left out of the API's aggregate and the windows.
ONE_OFFS = ("POST /api/v1/auth/login", "GET /api/v1/sync/pull (first sync)")


def ramp_up_end(samples: list, seconds: float) -> float:
    """When the last user had logged in and made its first sync: the steady day starts."""
    return max((t for name, t, *_ in samples if name in ONE_OFFS and t < seconds / 3), default=0)


def endpoint_figures(samples: list, seconds: float, hosts: list[str]) -> dict:
    """{endpoints: name -> requests, rps, p50/p95/p99 ms, errors, over the steady day (the
    one-offs over the whole run); api: the aggregate of every steady API request;
    per_instance: requests each URL answered; ramp_up_s: what was left out}."""
    steady_from = ramp_up_end(samples, seconds)
    by_name: dict[str, list] = defaultdict(list)
    for name, t, ms, ok, _instance in samples:
        if name in ONE_OFFS or t >= steady_from:
            by_name[name].append((ms, ok))
    endpoints = {
        name: _row(rows, seconds if name in ONE_OFFS else seconds - steady_from)
        for name, rows in by_name.items()
    }
    steady = [
        (ms, ok)
        for name, rows in by_name.items()
        if name not in (FLOOR, *ONE_OFFS)
        for ms, ok in rows
    ]
    per_instance: dict[str, int] = defaultdict(int)
    for _name, _t, _ms, _ok, instance in samples:
        per_instance[hosts[instance] if 0 <= instance < len(hosts) else "check"] += 1
    return {
        "endpoints": endpoints,
        "api": _row(steady, seconds - steady_from),
        "per_instance": dict(per_instance),
        "ramp_up_s": round(steady_from, 1),
    }


SCANS = ("POST /api/v1/scans", "GET /s/[code]")


def burst_figures(samples: list, seconds: float) -> dict:
    """The consumers' scans during the burst (the middle fifth of the day) and outside it,
    beside every other API request in the same two spans."""
    start, end = 0.4 * seconds, 0.6 * seconds
    steady_from = ramp_up_end(samples, seconds)
    spans: dict[str, list] = defaultdict(list)
    for name, t, ms, ok, _i in samples:
        if t < steady_from or name in (FLOOR, *ONE_OFFS):
            continue
        who = "scans" if name in SCANS else "others"
        spans[who + ("_in_burst" if start <= t < end else "_outside")].append((ms, ok))
    outside_s = seconds - steady_from - (end - start)
    return {
        key: _row(spans[key], end - start if key.endswith("in_burst") else outside_s)
        for key in ("scans_in_burst", "scans_outside", "others_in_burst", "others_outside")
    }


def _row(rows: list, seconds: float) -> dict:
    cuts = percentiles([ms for ms, _ok in rows])
    return {
        "requests": len(rows),
        "rps": round(len(rows) / seconds, 1) if seconds else None,
        **{k: round(v, 1) if v is not None else None for k, v in cuts.items()},
        "errors": sum(not ok for _ms, ok in rows),
    }


def soak_windows(samples: list, seconds: float, window: float = 60.0) -> dict:
    """The steady API requests of the first minute (after the ramp-up) and of the last."""

    def between(start: float, end: float) -> dict:
        rows = [
            (ms, ok)
            for name, t, ms, ok, _i in samples
            if start <= t < end and name not in (FLOOR, *ONE_OFFS)
        ]
        return _row(rows, end - start)

    steady_from = ramp_up_end(samples, seconds)
    return {
        "first": between(steady_from, steady_from + window),
        "last": between(seconds - window, seconds),
    }


def memory_figures(samples: list[dict], warm_s: float = 60.0) -> dict:
    """The workers' RSS before the load, at its start (after a minute's warm-up: imports
    done lazily, pools opened, caches filled to their working size) and at its end."""
    if not samples:
        return {"growth_pct": float("inf")}
    before, end = samples[0], samples[-1]
    start = next((s for s in samples if s["t"] >= warm_s), end)
    growth = (end["sum_mb"] - start["sum_mb"]) / start["sum_mb"] * 100
    return {
        "before_mb": before["sum_mb"],
        "start_mb": start["sum_mb"],
        "end_mb": end["sum_mb"],
        "growth_pct": round(growth, 1),
        "max_worker_start_mb": start["max_mb"],
        "max_worker_end_mb": end["max_mb"],
        "workers": len(end["pids"]),
        "workers_replaced": len(set(end["pids"]) - set(start["pids"])),
        "start_at_s": start["t"],
        "end_at_s": end["t"],
    }
