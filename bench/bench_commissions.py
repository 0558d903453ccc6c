"""Settle a month of 1,000,000 commission entries over 40,000 guides; a guide's "my earnings"."""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from datetime import datetime, timezone

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bench.common import emit, migrate, percentiles, scratch_postgres
from bench.scale import generate_scale_tenant
from guideapp.access import register_access_rules
from guideapp.policy.actor import Actor
from guideapp.commissions.models import CommissionStatement
from guideapp.commissions.service import my_earnings
from guideapp.commissions.settlement import close_month
from guideapp.db import make_engine, transaction

MONTH, NOISE_MONTH = "2026-10", "2026-09"
MONTH_START = datetime(2026, 9, 30, 16, tzinfo=timezone.utc)  # 1 October in Asia/Shanghai

ENTRIES_SQL = """
INSERT INTO commission_entries (id, tenant_id, guide_id, store_id, member_id, rule_id, kind,
    source_type, source_id, amount_fen, basis_fen, event_at, accounting_month, created_at)
SELECT md5(:k || '/e/' || :month || '/' || i), :t, md5(:k || '/g/' || g),
       md5(:k || '/s/' || (g / :gps)), md5(:k || '/m/' || (i % :members)),
       CASE WHEN kind < 5 THEN md5(:k || '/rule/bounty') ELSE md5(:k || '/rule/pct') END,
       CASE WHEN kind < 5 THEN 'bounty' WHEN kind < 9 THEN 'order' ELSE 'clawback' END,
       CASE WHEN kind < 5 THEN 'recruit' WHEN kind < 9 THEN 'order' ELSE 'refund' END,
       :month || '/' || i,
       CASE WHEN kind < 5 THEN 500 WHEN kind < 9 THEN basis * 300 / 10000
            ELSE -(basis * 300 / 10000 / 2) END,
       CASE WHEN kind < 5 THEN NULL ELSE basis END,
       :start + (i % 2592000) * interval '1 second', :month, now()
FROM (SELECT i, i % :guides AS g, i % 10 AS kind, 1000 + (i * 7919) % 99000 AS basis
      FROM generate_series(0::bigint, :n - 1) i) s
"""


def load_ledger(engine, scale, *, entries: int) -> float:
    """Rules, then the month's entries (and a quarter as many in the month before), set-based."""
    params = {
        "k": scale.key,
        "t": scale.tenant_id,
        "gps": scale.guides_per_store,
        "members": scale.members,
        "guides": scale.stores * scale.guides_per_store,
        "start": MONTH_START,
    }
    started = time.perf_counter()
    with engine.connect() as conn:
        if conn.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar():
            conn.execute(text("SET session_replication_role = replica"))
        conn.execute(text("SET synchronous_commit = off"))
        conn.execute(
            text("""
            INSERT INTO commission_rules (id, tenant_id, rule_key, version, name, kind, scope,
                amount_fen, rate_bp, order_basis, active, effective_from, created_at)
            VALUES (md5(:k || '/rule/bounty'), :t, md5(:k || '/rule/bounty'), 1, '招募奖励',
                    'recruit_bounty', 'tenant', 500, NULL, NULL, true, '2026-01-01', now()),
                   (md5(:k || '/rule/pct'), :t, md5(:k || '/rule/pct'), 1, '订单提成 3%',
                    'order_percent', 'tenant', NULL, 300, 'binding', true, '2026-01-01', now())
            """),
            params,
        )
        for month, n in ((MONTH, entries), (NOISE_MONTH, entries // 4)):
            conn.execute(text(ENTRIES_SQL), {**params, "month": month, "n": n})
        conn.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) commission_entries, commission_rules"))
    return round(time.perf_counter() - started, 1)


def settle(engine, tenant_id: str) -> float:
    started = time.perf_counter()
    with Session(engine) as session, transaction(session):
        close_month(
            session,
            tenant_id=tenant_id,
            month=MONTH,
            now=datetime(2026, 12, 1, tzinfo=timezone.utc),
        )
    return time.perf_counter() - started


def naive(engine, tenant_id: str) -> tuple[float, dict]:
    """The baseline: fetch the month's rows and sum them per guide in Python."""
    started = time.perf_counter()
    totals: dict = defaultdict(lambda: [0, 0, 0])
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT guide_id, amount_fen FROM commission_entries "
                "WHERE tenant_id = :t AND accounting_month = :m"
            ),
            {"t": tenant_id, "m": MONTH},
        )
        for guide_id, amount in rows:
            row = totals[guide_id]
            row[0 if amount > 0 else 1] += abs(amount)
            row[2] += amount
    return time.perf_counter() - started, totals


def my_earnings_ms(engine, scale, samples: int) -> list[float]:
    rng = random.Random(8)
    guides = scale.stores * scale.guides_per_store
    timings = []
    with Session(engine) as session:
        for _ in range(samples):
            g = rng.randrange(guides)
            actor = Actor(
                staff_id=scale.guide_id(g),
                tenant_id=scale.tenant_id,
                role="guide",
                store_id=scale.store_id(g // scale.guides_per_store),
                region_id=None,
            )
            started = time.perf_counter()
            result = my_earnings(session, actor=actor, month=MONTH, limit=50, cursor=None)
            timings.append((time.perf_counter() - started) * 1000)
            assert result["entries"] and result["month_state"] == "draft"
            session.rollback()
    return timings


def main(argv: list[str] | None = None) -> int:
    register_access_rules()  # services run in this process, not only behind create_app
    parser = argparse.ArgumentParser(prog="python -m bench.bench_commissions", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 entries, 4,000 guides")
    args = parser.parse_args(argv)
    stores, entries = (400, 100_000) if args.quick else (4000, 1_000_000)
    with scratch_postgres("bench_comm") as url:
        migrate(url)
        engine = make_engine(url)
        try:
            scale = generate_scale_tenant(
                engine, stores=stores, guides_per_store=10, members=stores * 25, verbose=False
            )
            load_s = load_ledger(engine, scale, entries=entries)
            settle_s = settle(engine, scale.tenant_id)
            again_s = settle(engine, scale.tenant_id)  # idempotent: a no-op
            naive_s, totals = naive(engine, scale.tenant_id)
            with Session(engine) as session:
                written = {
                    s.subject_id: [s.earned_fen, s.clawed_back_fen, s.net_fen]
                    for s in session.scalars(
                        select(CommissionStatement).where(CommissionStatement.level == "guide")
                    )
                }
            assert written == dict(totals), "set-based statements differ from the Python sums"
            timings = my_earnings_ms(engine, scale, 200 if args.quick else 400)
        finally:
            engine.dispose()
    guides = stores * 10
    emit(
        "commissions",
        title=f"Settle a month: {entries:,} entries over {guides:,} guides (PostgreSQL)",
        target="settlement < 60 s",
        met=settle_s < 60,
        entries_in_month=entries,
        entries_other_month=entries // 4,
        guides=guides,
        load_ledger_s=load_s,
        settle_s=round(settle_s, 2),
        settle_again_s=round(again_s, 3),
        naive_python_sum_s=round(naive_s, 2),
        statements_match_python=True,
        my_earnings_ms=percentiles(timings),
        comparison=(
            f"set-based close (statements for guides and stores written) "
            f"{settle_s:.2f} s vs fetching the month and summing per guide in Python "
            f"{naive_s:.2f} s (x{naive_s / settle_s:.1f}); a guide's month page p50 "
            f"{percentiles(timings)['p50']} ms"
        ),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
