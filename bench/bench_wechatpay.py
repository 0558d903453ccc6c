"""Benchmark: WeChat Pay v3 notification handling (verify, decrypt, member + order +
commission) beside a bare Flask endpoint on the same gunicorn, p50 / p99.

Notifications are signed and encrypted beforehand by the test fake (tests/wechatpay_fake.py,
as WeChat Pay does it), so the load generator only sends them. Three series, the same
Python load generator for each: the bare endpoint, first deliveries (every one a new
payment; half from known members bound to a guide, half from new payers), and retries of
the same notifications (WeChat's redeliveries: verified, decrypted, found, nothing written).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection

from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.bench_scans import _load_demo, _server
from bench.common import emit, migrate, percentiles, scratch_postgres
from guideapp.access import register_access_rules
from guideapp.db import make_engine, transaction
from guideapp.wiring import connect_reactions

MCHID = "1230000109"


def main(argv: list[str] | None = None) -> int:
    register_access_rules()
    connect_reactions()
    args = _parse_args(argv)
    box_key = Fernet.generate_key().decode()
    with scratch_postgres("bench_wechatpay") as url:
        migrate(url)
        engine = make_engine(url)
        try:
            _load_demo(engine)
            pay, merchant_id, bound_openids = _merchant(engine, box_key)
            env = {"GUIDEAPP_WECHAT_SECRETS_KEY": box_key}
            with _server(url, args.workers, env=env) as port:
                bare = _send(port, [("/bench/bare", {}, b"{}")] * args.requests, args)
                notes = _notifications(pay, merchant_id, bound_openids, args.requests)
                first = _send(port, notes, args)
                retried = _send(port, _resigned(pay, notes), args)
            orders, entries = _outcomes(engine)
        finally:
            engine.dispose()
    errors = bare["errors"] + first["errors"] + retried["errors"]
    met = errors == 0 and orders == args.requests and entries > 0
    emit(
        "wechatpay_notify",
        title="WeChat Pay notification handling vs a bare Flask endpoint",
        target="no errors; every payment recorded once; well under WeChat's 5 s timeout",
        met=met,
        comparison=f"a first delivery takes {first['p50_ms']} ms at p50 ({first['p99_ms']} ms "
        f"p99), a retry {retried['p50_ms']} ms, a bare endpoint {bare['p50_ms']} ms on the same "
        f"gunicorn ({args.workers} sync workers, {args.connections} connections)",
        first_delivery={k: first[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        retry={k: retried[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        bare={k: bare[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        p50_over_bare_ms=round(first["p50_ms"] - bare["p50_ms"], 2),
        orders_recorded=orders,
        commission_entries=entries,
        errors=errors,
        workers=args.workers,
        connections=args.connections,
    )
    return 0 if met else 1


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_wechatpay", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="500 notifications, not 2,000")
    parser.add_argument("--workers", type=int, default=min(3, max(2, os.cpu_count() or 2)))
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--requests", type=int, default=None)
    args = parser.parse_args(argv)
    args.requests = args.requests or (500 if args.quick else 2000)
    return args


def _merchant(engine, box_key: str):
    """The demo HQ's merchant (through the service, as the API does) and the openids of
    members bound to a guide."""
    from guideapp.members.identity import add_identity
    from guideapp.members.models import Member
    from guideapp.org.models import Staff
    from guideapp.policy.actor import Actor
    from guideapp.secretbox import SecretBox
    from guideapp.wechatpay.service import create_merchant
    from tests.wechatpay_fake import SAMPLE_TRANSACTION, FakeWeChatPay

    pay = FakeWeChatPay()
    with Session(engine) as session, transaction(session):
        hq = session.scalar(select(Staff).where(Staff.role == "hq_admin").order_by(Staff.id))
        data = {
            "name": "bench",
            "mchid": MCHID,
            "appids": [],
            "apiv3_key": pay.apiv3_key,
            "platform_keys": [pay.platform_key()],
            "store_id": None,
            "terminals": [],
            "active": True,
        }
        merchant = create_merchant(
            session, actor=Actor.for_staff(hq), box=SecretBox(box_key), data=data
        )
        bound = session.scalars(
            select(Member).where(Member.guide_id.is_not(None)).order_by(Member.id).limit(200)
        ).all()
        openids = []
        for number, member in enumerate(bound):
            openids.append(f"o-bench-bound-{number}")
            kind = f"openid:{SAMPLE_TRANSACTION['appid']}"
            add_identity(session, member, kind=kind, value=openids[-1])
        return pay, merchant.id, openids


def _notifications(pay, merchant_id: str, bound: list[str], count: int) -> list:
    from tests.wechatpay_fake import SAMPLE_TRANSACTION

    run, rng, notes = os.urandom(3).hex(), random.Random(7), []
    for number in range(count):
        openid = rng.choice(bound) if number % 2 else f"o-bench-{run}-{number}"
        resource = {
            **SAMPLE_TRANSACTION,
            "transaction_id": f"42{run}{number:020d}",
            "amount": {"total": rng.randrange(100, 100_000), "currency": "CNY"},
            "payer": {"openid": openid},
            "attach": rng.choice(["SH001", "BJ001", ""]),
            "success_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }
        headers, body = pay.notification("TRANSACTION.SUCCESS", resource)
        notes.append((f"/api/v1/wechat/pay/notify/{merchant_id}", headers, body))
    return notes


def _resigned(pay, notes: list) -> list:
    """The same bodies again, signed afresh as a redelivery is (new timestamp and nonce)."""
    return [(path, pay.sign(body), body) for path, _, body in notes]


def _send(port: int, requests: list, args) -> dict:
    lock, local = threading.Lock(), threading.local()
    samples: list[float] = []
    errors = [0]

    def one(item) -> None:
        path, headers, body = item
        if not hasattr(local, "conn"):
            local.conn = HTTPConnection("127.0.0.1", port, timeout=10)
        started = time.perf_counter()
        local.conn.request("POST", path, body, {"Content-Type": "application/json", **headers})
        response = local.conn.getresponse()
        response.read()
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            samples.append(elapsed)
            errors[0] += response.status >= 400

    with ThreadPoolExecutor(2) as pool:  # warm the workers and their pools
        list(pool.map(one, [("/bench/bare", {}, b"{}")] * 50))
    samples.clear()
    started = time.perf_counter()
    with ThreadPoolExecutor(args.connections) as pool:
        list(pool.map(one, requests))
    seconds = time.perf_counter() - started
    cuts = percentiles(samples)
    return {
        "requests": len(requests),
        "errors": errors[0],
        "rps": round(len(requests) / seconds, 1),
        "p50_ms": cuts["p50"],
        "p99_ms": cuts["p99"],
    }


def _outcomes(engine) -> tuple[int, int]:
    from guideapp.commissions.models import CommissionEntry
    from guideapp.members.models import Order

    with Session(engine) as session:
        orders = session.scalar(
            select(func.count()).select_from(Order).where(Order.channel == "wechat_pay")
        )
        entries = session.scalar(
            select(func.count())
            .select_from(CommissionEntry)
            .join(Order, Order.id == CommissionEntry.source_id)
            .where(Order.channel == "wechat_pay")
        )
        return int(orders or 0), int(entries or 0)


if __name__ == "__main__":
    sys.exit(main())
