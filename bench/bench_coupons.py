"""Benchmark: coupons at brand scale.

(a) HQ's bulk issue of one coupon to every member of a segment (1,000,000 by default;
    GUIDEAPP_BENCH_COUPON_MEMBERS or --members to scale down) through the job
    (coupons.bulk_issue: keyset batches, set-based, one commit per batch), beside a
    row-by-row baseline measured in the same run: issuance.issue_one per member, each in its
    own transaction, on a sample, extrapolated.
(b) Redemption under wrk from two "tills", each redeeming distinct pre-issued codes plus a
    share of deliberate duplicates, against the one-write floor endpoint on the same
    gunicorn in the same run; then double redemptions are counted (bench/coupon_tills.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bench.common import emit, migrate, scratch_postgres
from bench.coupon_tills import run_tills
from bench.scale import _md5, generate_scale_tenant
from guideapp.access import register_access_rules
from guideapp.db import make_engine, make_sessionmaker, transaction
from guideapp.members.models import TIERS


def main(argv: list[str] | None = None) -> int:
    register_access_rules()
    args = _parse_args(argv)
    load = {"before": _load_average()}
    with scratch_postgres("bench_coupons") as url:
        migrate(url)
        engine = make_engine(url)
        try:
            scale = generate_scale_tenant(engine, members=args.members, verbose=True)
            bulk = _bulk_issue(engine, scale, args)
            baseline = _row_by_row(engine, scale, args)
            tills = run_tills(url, engine, scale, bulk["template_id"], args)
        finally:
            engine.dispose()
    load["after"] = _load_average()
    _report_bulk(bulk, baseline, args, load)
    return _report_redeem(tills, args, load, bulk["ok"])


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.bench_coupons", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k members, 5 s of wrk each")
    parser.add_argument("--members", type=int, default=None)
    parser.add_argument("--sample", type=int, default=None, help="members issued row by row")
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duplicate-every", type=int, default=10, help="every Nth request")
    args = parser.parse_args(argv)
    default = 100_000 if args.quick else 1_000_000
    args.members = args.members or int(os.environ.get("GUIDEAPP_BENCH_COUPON_MEMBERS", default))
    args.sample = args.sample or (500 if args.quick else 2_000)
    args.seconds = args.seconds or (5 if args.quick else 10)
    return args


def _hq_actor(session: Session, scale):
    from guideapp.org.models import Staff
    from guideapp.policy.actor import Actor

    return Actor.for_staff(session.get_one(Staff, _md5(f"{scale.key}/hq")))


def _template(session: Session, actor, name: str) -> str:
    from guideapp.coupons.service import create_template

    data = {
        "name": name,
        "kind": "amount_off",
        "amount_off_fen": 500,
        "valid_days": 30,
        "store_ids": [],
        "region_ids": [],
        "channels": [],
    }
    return create_template(session, actor=actor, data=data).id


def _bulk_issue(engine, scale, args) -> dict:
    """One template to every member of the segment (all tiers: the whole tenant), through
    the job run by a Runner as a worker runs it; timed from its first unit to its end."""
    from guideapp.coupons import bulk
    from guideapp.coupons.models import Coupon
    from guideapp.jobs.models import Job
    from guideapp.jobs.runner import Runner, Settings, run_to_end

    with Session(engine) as session, transaction(session):
        actor = _hq_actor(session, scale)
        template_id = _template(session, actor, "百万会员券")
        job, _ = bulk.start_bulk_issue(
            session,
            actor=actor,
            template_id=template_id,
            data={"segment": {"tiers": list(TIERS)}},
            enqueue=False,
        )
        job_id = job.id
    started = time.perf_counter()
    run_to_end(Runner(make_sessionmaker(engine), Settings(lease_seconds=3600)), job_id)
    seconds = time.perf_counter() - started
    with Session(engine) as session:
        job = session.get_one(Job, job_id)
        coupons, holders = session.execute(
            select(func.count(), func.count(func.distinct(Coupon.member_id))).where(
                Coupon.template_id == template_id
            )
        ).one()
        changes = session.scalar(
            text("SELECT count(*) FROM change_log WHERE table_name = 'coupons'")
        )
    result = job.result or {}
    print(f"  bulk issue: {job.state} in {seconds:.1f} s: {result}", flush=True)
    ok = (
        job.state == "succeeded"
        and result.get("issued") == coupons == holders == args.members
        and result.get("members") == args.members
    )
    return {
        "ok": ok,
        "template_id": template_id,
        "state": job.state,
        "seconds": round(seconds, 1),
        "coupons": coupons,
        "change_log_rows": changes,
    }


def _row_by_row(engine, scale, args) -> dict:
    """issue_one per member, each its own transaction (lock, issue, commit), on a sample."""
    from guideapp.coupons import issuance
    from guideapp.members.models import Member

    with Session(engine) as session, transaction(session):
        actor = _hq_actor(session, scale)
        template_id = _template(session, actor, "逐个发放券")
        sample = session.scalars(
            select(Member.id)
            .where(Member.tenant_id == scale.tenant_id)
            .order_by(Member.id)
            .limit(args.sample)
        ).all()
    how = issuance.Issue(source="staff", key=lambda m: f"row:{m}", issued_by=actor.staff_id)
    started = time.perf_counter()
    for member_id in sample:
        with Session(engine, expire_on_commit=False) as session, transaction(session):
            template = issuance.lock_template(
                session, tenant_id=scale.tenant_id, template_id=template_id
            )
            issuance.issue_one(session, template=template, member_id=member_id, how=how)
    seconds = time.perf_counter() - started
    rate = len(sample) / seconds
    return {
        "sample": len(sample),
        "seconds": round(seconds, 1),
        "per_s": round(rate, 1),
        "would_take_s": round(args.members / rate, 1),
    }


def _load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _report_bulk(bulk: dict, baseline: dict, args, load: dict) -> None:
    members = args.members
    emit(
        "coupons_bulk_issue",
        title=f"Bulk issue of one coupon to {members:,} members of a segment through the job",
        target="set-based through the job; seconds, beside a row-by-row baseline",
        met=bulk["ok"],
        comparison=f"the job issued {bulk['coupons']:,} coupons in {bulk['seconds']} s "
        f"({members / max(bulk['seconds'], 0.001):,.0f}/s); issue_one per member, one "
        f"transaction each, did {baseline['per_s']}/s on a sample of {baseline['sample']} "
        f"(would take {baseline['would_take_s']} s)",
        members=members,
        seconds=bulk["seconds"],
        coupons=bulk["coupons"],
        change_log_rows=bulk["change_log_rows"],
        job_state=bulk["state"],
        row_by_row=baseline,
        load_average_1_5_15=load,
    )


def _report_redeem(tills: dict, args, load: dict, bulk_ok: bool) -> int:
    floor, me, redeem = tills["floor"], tills["me"], tills["redeem"]
    counted, doubles = tills["counted"], tills["doubles"]
    ratio = round(redeem["rps"] / floor["rps"], 3) if floor["rps"] else None
    lost = max(0, redeem["ok"] - counted)
    clean = (
        doubles["coupons_redeemed_twice"] == 0
        and redeem["errors"] == 0
        and floor["errors"] == 0
        and me["errors"] == 0
        and lost == 0
        and doubles["coupons_used"] == counted
    )
    emit(
        "coupons_redeem",
        title="Redemption from two tills under wrk vs the one-write floor endpoint",
        target=">= 40% of the one-write floor; 0 double redemptions counted afterwards",
        met=clean and ratio is not None and ratio >= 0.4,
        comparison=f"redemption serves {ratio:.0%} of the one-write floor's requests/s on the "
        f"same gunicorn ({args.workers} sync workers, wrk -t2 -c{args.connections} "
        f"-d{args.seconds}s); {doubles['coupons_redeemed_twice']} coupons redeemed twice; "
        f"an authenticated GET /api/v1/me alone serves {me['rps'] / floor['rps']:.0%} of it",
        rps_ratio=ratio,
        redeem={k: redeem[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        one_write_floor={k: floor[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        authenticated_me={k: me[k] for k in ("rps", "p50_ms", "p99_ms", "requests")},
        answers={"200": redeem["ok"], "409": redeem["conflicts"], "other": redeem["other"]},
        duplicate_every=args.duplicate_every,
        redemptions_stored=counted,
        **doubles,
        errors=redeem["errors"] + floor["errors"] + me["errors"],
        load_average_1_5_15=load,
    )
    return 0 if clean and bulk_ok else 1


if __name__ == "__main__":
    sys.exit(main())
