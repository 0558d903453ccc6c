"""Benchmark: a quick-reply render and a guide's quick-reply list through the HTTP API."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

from flask import Flask
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bench.common import emit, migrate, percentiles, scratch_postgres
from guideapp.access import register_access_rules
from guideapp import create_app
from guideapp.config import PROJECT_ROOT, Config
from guideapp.db import make_engine, new_id, transaction, utcnow
from guideapp.demo import DEMO_PASSWORD, load_demo
from guideapp.members.models import Member, MemberTag, Order, Tag
from guideapp.org.models import Staff
from guideapp.replies.models import SCENES, QuickReply, QuickReplyTag
from guideapp.replies.render import FIELDS

GUIDE_PHONE = "13800000003"  # guide at SH001 in the demo tenant
ALL_PLACEHOLDERS = "，".join("{" + name + "}" for name in FIELDS)
WARMUP = 20


def main(argv: list[str] | None = None) -> int:
    register_access_rules()  # services run in this process, not only behind create_app
    parser = argparse.ArgumentParser(prog="python -m bench.bench_replies", description=__doc__)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument(
        "--replies",
        type=int,
        default=20_000,
        help="replies in the tenant, most of them not the guide's",
    )
    parser.add_argument("--quick", action="store_true", help="2,000 replies, 100 iterations")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.replies = 100, 2_000
    with scratch_postgres("bench_replies") as url:
        migrate(url)
        engine = make_engine(url)
        try:
            setup = _fill(engine, args.replies)
        finally:
            engine.dispose()
        app = create_app(Config(DATABASE_URL=url, LOG_LEVEL="WARNING"))
        try:
            samples = _measure(app, setup, args.iterations)
        finally:
            app.extensions["guideapp"]["engine"].dispose()
    samples["bare"] = _bare_flask(args.iterations)
    _emit(samples, setup, args)
    return 0


def _fill(engine, replies: int) -> dict:
    """The demo tenant plus `replies` replies: HQ's, every store's and every guide's own."""
    with Session(engine) as session, transaction(session):
        tenant = load_demo(session, PROJECT_ROOT / "fixtures" / "demo")
        guide = session.scalar(select(Staff).where(Staff.phone == GUIDE_PHONE))
        staff = session.execute(
            select(Staff.id, Staff.store_id).where(
                Staff.tenant_id == tenant.id, Staff.role != "hq_admin"
            )
        ).all()
        tag_ids = list(session.scalars(select(Tag.id).where(Tag.tenant_id == tenant.id)))
        rows, tags = [], []
        for i in range(replies):
            owner_id, store_id = staff[i % len(staff)]
            level = ("hq", "store", "personal")[0 if i % 10 == 0 else 1 if i % 10 < 4 else 2]
            rows.append(
                {
                    "id": new_id(),
                    "tenant_id": tenant.id,
                    "level": level,
                    "owner_store_id": store_id if level == "store" else None,
                    "owner_staff_id": owner_id if level == "personal" else None,
                    "scene": SCENES[i % len(SCENES)],
                    "category_id": None,
                    "title": f"话术 {i}",
                    "body": f"{{member.name}}您好，{ALL_PLACEHOLDERS}",
                    "tag_ids": [tag_ids[i % len(tag_ids)]] if i % 3 == 0 else [],
                    "tagged": i % 3 == 0,
                    "usage_count": i % 97,
                    "version": 1,
                    "created_by": None,
                }
            )
            tags += [
                {"reply_id": rows[-1]["id"], "tag_id": t, "tenant_id": tenant.id}
                for t in rows[-1]["tag_ids"]
            ]
        session.execute(insert(QuickReply), rows)
        session.execute(insert(QuickReplyTag), tags)
        member = session.scalar(
            select(Member).where(Member.guide_id == guide.id).order_by(Member.id)
        )
        session.add(
            Order(
                tenant_id=tenant.id,
                member_id=member.id,
                channel="pos",
                order_no=new_id(),
                amount_fen=69900,
                items=[{"name": "跑鞋"}],
                ordered_at=utcnow() - timedelta(days=3),
            )
        )
        if not session.scalar(select(MemberTag.id).where(MemberTag.member_id == member.id)):
            session.add(MemberTag(tenant_id=tenant.id, member_id=member.id, tag_id=tag_ids[0]))
        reply_id = next(r["id"] for r in rows if r["level"] == "hq")
        visible = sum(
            1
            for r in rows
            if r["level"] == "hq"
            or r["owner_store_id"] == guide.store_id
            or r["owner_staff_id"] == guide.id
        )
        return {
            "member_id": member.id,
            "reply_id": reply_id,
            "replies": replies,
            "visible": visible,
        }


def _measure(app, setup: dict, iterations: int) -> dict:
    client = app.test_client()
    login = client.post(
        "/api/v1/auth/login", json={"phone": GUIDE_PHONE, "password": DEMO_PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
    render = (
        "POST",
        f"/api/v1/quick-replies/{setup['reply_id']}/render",
        {"member_id": setup["member_id"]},
    )
    calls = {
        "render": render,
        "list": ("GET", "/api/v1/quick-replies?limit=50", None),
        "list_for_member": (
            "GET",
            f"/api/v1/quick-replies?limit=50&member_id={setup['member_id']}",
            None,
        ),
        "list_page_2": ("GET", None, None),
        "me": ("GET", "/api/v1/me", None),
    }  # the floor of any logged-in request
    first = client.get(calls["list"][1], headers=headers).get_json()
    calls["list_page_2"] = ("GET", calls["list"][1] + f"&cursor={first['next_cursor']}", None)
    samples = {name: [] for name in calls}
    for call in calls.values():
        _time(client, headers, call, WARMUP)
    for _ in range(5):  # rounds, interleaved so background load hits every call alike
        for name, call in calls.items():
            samples[name] += _time(client, headers, call, max(1, iterations // 5))
    return samples


def _time(client, headers, call, n: int) -> list[float]:
    method, path, body = call
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.open(path, method=method, json=body, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.get_data(True)}")
    return samples


def _bare_flask(iterations: int) -> list[float]:
    """The floor: a Flask app that only answers {"ok": true}, through the same test client."""
    app = Flask("bare")

    @app.get("/ok")
    def ok():
        return {"ok": True}

    client = app.test_client()
    _time(client, None, ("GET", "/ok", None), WARMUP)
    return _time(client, None, ("GET", "/ok", None), iterations)


def _emit(samples: dict, setup: dict, args) -> None:
    base = percentiles(samples["bare"])["p50"]
    figures = {
        name: {**percentiles(values), "x bare": round(percentiles(values)["p50"] / base, 1)}
        for name, values in samples.items()
        if name != "bare"
    }
    emit(
        "replies.http",
        title=(
            f"Quick replies through the HTTP API (Flask test client, server time): "
            f"{setup['replies']:,} replies in the tenant, {setup['visible']:,} the guide's"
        ),
        bare_flask_ms=percentiles(samples["bare"]),
        render_ms=figures["render"],
        list_ms=figures["list"],
        list_for_member_ms=figures["list_for_member"],
        list_page_2_ms=figures["list_page_2"],
        logged_in_me_ms=figures["me"],
        iterations=args.iterations,
        comparison=(
            f"bare Flask {base} ms; render (all {len(FIELDS)} placeholders, usage "
            f"counted, committed) {figures['render']['p50']} ms "
            f"({figures['render']['x bare']}x); list of 50 {figures['list']['p50']} ms "
            f"({figures['list']['x bare']}x); any logged-in GET /me "
            f"{figures['me']['p50']} ms ({figures['me']['x bare']}x)"
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
