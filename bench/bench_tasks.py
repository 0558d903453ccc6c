"""Benchmark: campaign fan-out at 4,000 stores, a scheduler tick over 1M members, the inbox."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
import urllib.request
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bench.bench_scans import _server
from bench.common import emit, migrate, scratch_postgres
from bench.scale import PASSWORD, generate_scale_tenant
from guideapp.access import register_access_rules
from guideapp.policy.actor import Actor
from guideapp.db import make_engine, new_id, transaction, utcnow
from guideapp.org.models import Staff
from guideapp.tasks import plans, service
from guideapp.tasks.models import Task, TaskTarget
from guideapp.tasks.scheduler import tick
from guideapp.wiring import connect_reactions


def main(argv=None) -> int:
    register_access_rules()  # services run in this process, not only behind create_app
    args = _args(argv)
    connect_reactions()  # the tick runs without an app: materials react to it as in production
    members, stores = (100_000, 400) if args.quick else (1_000_000, 4000)
    with scratch_postgres("bench_tasks") as url:
        migrate(url)
        engine = make_engine(url)
        scale = generate_scale_tenant(engine, members=members, stores=stores, verbose=False)
        hq = _hq(engine, scale)
        fanout = _fanout(engine, hq, stores)
        naive = _naive_fanout(engine, scale, hq)
        ticks = _ticks(engine, hq, scale)
        inbox = _inbox_under_load(url, engine, scale, args)
        engine.dispose()
    emit(
        "tasks_fanout",
        title=f"Publish a campaign to {stores:,} stores x 10 guides",
        target="under 5 s, set-based SQL",
        met=fanout["seconds"] < 5,
        comparison=f"set-based {fanout['seconds']} s for {fanout['tasks']:,} tasks and "
        f"{fanout['targets']:,} targets vs row-by-row ORM inserts at "
        f"{naive['tasks_per_s']} tasks/s (would take {naive['would_take_s']} s)",
        **fanout,
        naive=naive,
    )
    emit(
        "tasks_tick",
        title=f"Scheduler tick over {members:,} members (371, birthday, silent)",
        target="under 30 s",
        met=ticks["first_s"] < 30,
        comparison=f"first tick {ticks['first_s']} s creating {ticks['created']}; the same "
        f"tick again {ticks['again_s']} s creating {ticks['again_created']} "
        f"(exactly once); a 7-day catch-up {ticks['catch_up_s']} s",
        **ticks,
    )
    emit(
        "tasks_inbox",
        title="A guide's inbox under load vs a bare Flask endpoint (gunicorn)",
        target="inbox throughput >= 40% of the bare endpoint",
        met=inbox["ratio"] >= 0.4,
        comparison=f"inbox {inbox['kept']['rps']} req/s vs bare {inbox['bare']['rps']} "
        f"req/s = {inbox['kept_ratio']:.0%} (pages kept while unchanged); every "
        f"page rebuilt {inbox['rebuilt']['rps']} req/s = {inbox['rebuilt_ratio']:.0%}; "
        f"a phone revalidating (304) {inbox['revalidated']['rps']} req/s = "
        f"{inbox['revalidated_ratio']:.0%}",
        **inbox,
    )
    return 0


def _args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_tasks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k members, 400 stores")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=3)
    return parser.parse_args(argv)


def _hq(engine, scale) -> Actor:
    with Session(engine, expire_on_commit=False) as session:
        hq = Staff(
            tenant_id=scale.tenant_id,
            role="hq_admin",
            name="HQ",
            phone="13000000000",
            password_hash="x",
        )
        session.add(hq)
        session.commit()
        return Actor.for_staff(hq)


def _fanout(engine, hq: Actor, stores: int) -> dict:
    with Session(engine, expire_on_commit=False) as session, transaction(session):
        campaign = service.create_campaign(
            session,
            actor=hq,
            data={
                "title": "双12 回访",
                "brief": "",
                "starts_at": utcnow(),
                "due_at": utcnow() + timedelta(days=7),
                "target": {"all": True},
                "segment": {"stages": ["regular"]},
                "distribution": "auto",
            },
        )
    started = time.perf_counter()
    with Session(engine, expire_on_commit=False) as session, transaction(session):
        result = service.publish(session, actor=hq, campaign_id=campaign.id)
    seconds = round(time.perf_counter() - started, 2)
    return {
        "seconds": seconds,
        "tasks": result["tasks"],
        "targets": result["targets"],
        "stores": stores,
    }


def _naive_fanout(engine, scale, hq: Actor, count: int = 400) -> dict:
    """The same rows one ORM object at a time, for a sample of guides; then rolled back."""
    with Session(engine, expire_on_commit=False) as session:
        guides = session.execute(
            select(Staff.id, Staff.store_id)
            .where(Staff.tenant_id == scale.tenant_id, Staff.role == "guide")
            .limit(count)
        ).all()
        started = time.perf_counter()
        for guide_id, store_id in guides:
            task = Task(
                id=new_id(),
                tenant_id=scale.tenant_id,
                store_id=store_id,
                assignee_id=guide_id,
                source="campaign",
                dedupe_key=new_id(),
                title="naive",
                starts_at=utcnow(),
                due_at=utcnow(),
            )
            session.add(task)
            session.flush()
            members = session.scalars(
                text("SELECT id FROM members WHERE guide_id = :g AND stage = 'regular'"),
                {"g": guide_id},
            ).all()
            for member_id in members:
                session.add(
                    TaskTarget(
                        id=task.id + member_id,
                        tenant_id=scale.tenant_id,
                        task_id=task.id,
                        member_id=member_id,
                    )
                )
                session.flush()
        seconds = time.perf_counter() - started
        session.rollback()
    per_s = round(len(guides) / seconds, 1)
    return {"tasks_per_s": per_s, "would_take_s": round(scale.stores * 10 / per_s, 1)}


def _ticks(engine, hq: Actor, scale) -> dict:
    with Session(engine, expire_on_commit=False) as session, transaction(session):
        for name, trigger, steps, params in (
            (
                "371",
                "member_joined",
                [
                    {"days": 3, "title": "第3天回访"},
                    {"days": 7, "title": "第7天邀约"},
                    {"days": 30, "title": "首月关怀"},
                ],
                {},
            ),
            ("生日", "birthday", [{"days": 0, "title": "生日祝福"}], {}),
            ("沉睡唤醒", "silent", [{"days": 0, "title": "唤醒"}], {"silent_days": 60}),
        ):
            plans.create_rule(
                session,
                actor=hq,
                data={"name": name, "trigger": trigger, "steps": steps, "params": params},
            )
    timings, created = [], []
    for now in (utcnow(), utcnow(), utcnow() + timedelta(days=7)):
        started = time.perf_counter()
        with Session(engine, expire_on_commit=False) as session, transaction(session):
            run = tick(session, tenant_id=scale.tenant_id, now=now)
            created.append(run.created["sop_tasks"])
        timings.append(round(time.perf_counter() - started, 2))
    with Session(engine, expire_on_commit=False) as session:
        total = session.scalar(
            select(func.count()).select_from(Task).where(Task.sop_rule_id.is_not(None))
        )
    return {
        "first_s": timings[0],
        "created": created[0],
        "again_s": timings[1],
        "again_created": created[1],
        "catch_up_s": timings[2],
        "catch_up_created": created[2],
        "sop_tasks_total": total,
        "members": scale.members,
    }


def _inbox_under_load(url, engine, scale, args) -> dict:
    """wrk against the bare endpoint, the inbox as served (pages kept while unchanged), the
    inbox with every page rebuilt (cache off: the cost after each change) and a phone's
    revalidation (If-None-Match: 304), each server started for its run."""
    with engine.connect() as conn:
        phone = conn.execute(
            text("SELECT phone FROM staff WHERE id = :g"), {"g": scale.guide_id(1)}
        ).scalar_one()
    runs = {}
    for name, cache_bytes in (("kept", None), ("rebuilt", "0")):
        env = {"GUIDEAPP_INBOX_CACHE_BYTES": cache_bytes} if cache_bytes else {}
        with _server(url, args.workers, app="bench.bench_scans:make_app()", env=env) as port:
            token = _login(port, phone)
            if name == "kept":
                runs["bare"] = _wrk(port, "/bench/bare", token, args)
                etag = _get(port, INBOX_PATH, token).headers["ETag"]
                runs["revalidated"] = _wrk(
                    port, INBOX_PATH, token, args, headers={"If-None-Match": etag}
                )
            runs[name] = _wrk(port, INBOX_PATH, token, args)
    runs["inbox"] = runs["kept"]
    for name in ("kept", "rebuilt", "revalidated"):
        runs[f"{name}_ratio"] = round(runs[name]["rps"] / runs["bare"]["rps"], 3)
    runs["ratio"] = runs["kept_ratio"]
    runs["workers"], runs["connections"] = args.workers, args.connections
    return runs


INBOX_PATH = "/api/v1/inbox?limit=20"


def _login(port: int, phone: str) -> str:
    login = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/auth/login",
        method="POST",
        data=json.dumps({"phone": phone, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(login).read())["access_token"]


def _get(port: int, path: str, token: str):
    return urllib.request.urlopen(
        urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
        )
    )


def _wrk(port: int, path: str, token: str, args, headers: dict | None = None) -> dict:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(args.connections),
            "-d",
            f"{args.seconds}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            *extra,
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(next(line for line in out.splitlines() if "Requests/sec" in line).split()[-1])
    p50 = next(line for line in out.splitlines() if line.strip().startswith("50%")).split()[-1]
    return {"rps": round(rps, 1), "p50": p50}


if __name__ == "__main__":
    raise SystemExit(main())
