"""Benchmark: the landing page's identified scan beside the anonymous one, same server, same run.

The landing page inside WeChat posts the scan with the snsapi_base `oauth_code` WeChat gave
it; the server exchanges it (sns/oauth2/access_token) before routing and recording, and
finds or creates the member. Here WeChat is the test fake (tests/fake_wechat.py) in a
process of its own on loopback, so the figure is our work plus one local HTTP round trip,
not WeChat's latency. Codes are issued before the timed runs (each works once); the
openids come from a pool, so most scans find a member and some create one.

Both scans and a bare endpoint go through the same Python load generator (wrk cannot hand
out one-time codes), one after the other on the same gunicorn.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection

from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.bench_scans import CITIES, CODE, SPREAD_DEG, _load_demo, _server
from bench.common import emit, migrate, percentiles, scratch_postgres, wait_until_up
from guideapp.access import register_access_rules
from guideapp.config import PROJECT_ROOT
from guideapp.db import make_engine, transaction

OA_APPID, OA_SECRET = "wx00000000000000b2", "oasecret0000000000000000000000b2"
OPENID_POOL = 2000


def main(argv: list[str] | None = None) -> int:
    register_access_rules()
    args = _parse_args(argv)
    key = Fernet.generate_key().decode()
    with _fake() as fake_url, scratch_postgres("bench_idscans") as url:
        migrate(url)
        engine = make_engine(url)
        try:
            _load_demo(engine)
            _configure(engine, key)
            env = {"GUIDEAPP_WECHAT_API_BASE": fake_url, "GUIDEAPP_WECHAT_SECRETS_KEY": key}
            codes = _issue_codes(fake_url, args.requests + 100)
            with _server(url, args.workers, env=env) as port:
                runs = {}
                for name, path, body in (
                    ("bare", "/bench/bare", lambda i: {}),
                    ("anonymous", "/api/v1/scans", lambda i: {}),
                    ("identified", "/api/v1/scans", lambda i: {"oauth_code": codes[i]}),
                ):
                    runs[name] = _python_load(port, path, body, args)
            identified_rows = _identified(engine)
        finally:
            engine.dispose()
    bare, anon, ident = runs["bare"], runs["anonymous"], runs["identified"]
    errors = sum(r["errors"] for r in runs.values())
    emit(
        "identified_scan",
        title="Landing-page scan identified by a WeChat OAuth code vs anonymous (fake WeChat)",
        target="no errors; every identified scan recorded with its member",
        met=errors == 0 and identified_rows >= ident["requests"],
        comparison=f"identified p50 {ident['p50_ms']} ms vs anonymous {anon['p50_ms']} ms "
        f"(x{ident['p50_ms'] / anon['p50_ms']:.2f}) and a bare endpoint {bare['p50_ms']} ms, "
        f"same gunicorn ({args.workers} sync workers), the code exchange against a local fake",
        identified={k: ident[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        anonymous={k: anon[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        bare={k: bare[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        identified_scans_recorded=identified_rows,
        errors=errors,
        workers=args.workers,
        connections=args.connections,
        openid_pool=OPENID_POOL,
    )
    return 0 if errors == 0 else 1


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_identified_scans")
    parser.add_argument("--quick", action="store_true", help="800 requests each, not 3000")
    parser.add_argument("--workers", type=int, default=min(3, max(2, os.cpu_count() or 2)))
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--requests", type=int, default=None)
    args = parser.parse_args(argv)
    args.requests = args.requests or (800 if args.quick else 3000)
    return args


class _fake:
    """tests/fake_wechat.py in its own process, knowing the demo brand's official account."""

    def __enter__(self) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_wechat", str(port), f"{OA_APPID}:{OA_SECRET}"],
            cwd=PROJECT_ROOT,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        if wait_until_up(f"{self.url}/cgi-bin/token", seconds=30):
            return self.url
        self.__exit__()
        raise RuntimeError("the fake WeChat did not come up")

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=10)


def _configure(engine, key: str) -> None:
    """The demo brand's official account, as HQ's PUT /wechat/config stores it."""
    from guideapp.org.models import Tenant
    from guideapp.wechat.models import WechatConfig
    from guideapp.wechat.secrets import SecretBox

    with Session(engine) as session, transaction(session):
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.slug == "stride"))
        session.add(
            WechatConfig(
                tenant_id=tenant_id, oa_appid=OA_APPID, oa_secret=SecretBox(key).seal(OA_SECRET)
            )
        )


def _issue_codes(fake_url: str, n: int) -> list[str]:
    rng = random.Random(7)

    def one(_i: int) -> str:
        openid = f"o-bench-{rng.randrange(OPENID_POOL)}"
        url = f"{fake_url}/_fake/oauth_code?appid={OA_APPID}&openid={openid}"
        with urllib.request.urlopen(urllib.request.Request(url, method="POST")) as answer:
            return json.load(answer)["code"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def _python_load(port: int, path: str, extra, args) -> dict:
    """args.requests requests over keep-alive connections (after 50 to warm up)."""
    rng, lock = random.Random(), threading.Lock()
    samples, errors, local = [], [0], threading.local()
    counter = iter(range(10**9))

    def one(_n: int, timed: bool = True) -> None:
        if not hasattr(local, "conn"):
            local.conn = HTTPConnection("127.0.0.1", port, timeout=10)
        with lock:
            i = next(counter)
        lat, lng = rng.choice(CITIES)
        body = {
            "code": CODE,
            "lat": lat + rng.uniform(-SPREAD_DEG, SPREAD_DEG),
            "lng": lng + rng.uniform(-SPREAD_DEG, SPREAD_DEG),
            **extra(i),
        }
        started = time.perf_counter()
        local.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = local.conn.getresponse()
        response.read()
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            if timed:
                samples.append(elapsed)
            errors[0] += response.status >= 400

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda n: one(n, timed=False), range(50)))
    started = time.perf_counter()
    with ThreadPoolExecutor(args.connections) as pool:
        list(pool.map(one, range(args.requests)))
    seconds = time.perf_counter() - started
    cuts = percentiles(samples)
    return {
        "requests": args.requests,
        "errors": errors[0],
        "rps": round(args.requests / seconds, 1),
        "p50_ms": cuts["p50"],
        "p99_ms": cuts["p99"],
    }


def _identified(engine) -> int:
    from guideapp.scans.models import Scan

    with Session(engine) as session:
        return session.scalar(
            select(func.count()).select_from(Scan).where(Scan.member_id.is_not(None))
        )


if __name__ == "__main__":
    sys.exit(main())
