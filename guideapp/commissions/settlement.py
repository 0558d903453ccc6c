"""Monthly settlement: close a month (set-based statements, as a job), approve, read."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import case, func, insert, literal, select
from sqlalchemy.orm import Session

from guideapp import jobs
from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.commissions import rules as maths
from guideapp.commissions.ledger import month_lock
from guideapp.commissions.models import (
    CommissionEntry,
    CommissionSettlement,
    CommissionStatement,
)
from guideapp.db import utcnow
from guideapp.errors import Forbidden, InvalidInput, InvalidState
from guideapp.jobs.service import find_by_key
from guideapp.org.models import Staff, Store, Tenant
from guideapp.pagination import paginate

# Years 1900-2999: a month whose bounds (and next month) every date type can hold.
MONTH = re.compile(r"^(19|2\d)\d\d-(0[1-9]|1[0-2])$")


def check_month(month: str) -> str:
    if not MONTH.match(month or ""):
        raise InvalidInput(errors={"month": ["A month as YYYY-MM (1900-2999), e.g. 2026-11."]})
    return month


def close_month(
    session: Session,
    *,
    tenant_id: str,
    month: str,
    closed_by: str | None = None,
    now: datetime | None = None,
) -> tuple[CommissionSettlement, bool]:
    """Freeze a finished month and write its statements; closing it again changes nothing."""
    check_month(month)
    month_lock(session, tenant_id, exclusive=True)  # waits for in-flight ledger writes
    _check_ended(session, tenant_id, month, now)
    existing = session.scalar(
        select(CommissionSettlement).where(
            CommissionSettlement.tenant_id == tenant_id, CommissionSettlement.month == month
        )
    )
    if existing is not None:
        return existing, False
    settlement = CommissionSettlement(
        tenant_id=tenant_id,
        month=month,
        state="draft",
        closed_by=closed_by,
        closed_at=now or utcnow(),
    )
    session.add(settlement)
    session.flush()
    for level, subject, store in (
        ("guide", CommissionEntry.guide_id, func.max(CommissionEntry.store_id)),
        ("store", CommissionEntry.store_id, CommissionEntry.store_id),
    ):
        _write_statements(session, settlement, level, subject, store)
    totals = session.execute(
        select(
            func.coalesce(func.sum(CommissionStatement.entries), 0),
            func.coalesce(func.sum(CommissionStatement.earned_fen), 0),
            func.coalesce(func.sum(CommissionStatement.clawed_back_fen), 0),
            func.coalesce(func.sum(CommissionStatement.net_fen), 0),
        ).where(
            CommissionStatement.settlement_id == settlement.id, CommissionStatement.level == "store"
        )
    ).one()
    settlement.entries, settlement.earned_fen, settlement.clawed_back_fen, settlement.net_fen = (
        int(v) for v in totals
    )
    session.flush()
    return settlement, True


def _check_ended(session: Session, tenant_id: str, month: str, now: datetime | None) -> None:
    zone = session.execute(select(Tenant.timezone).where(Tenant.id == tenant_id)).scalar_one()
    _, end = maths.month_bounds(month, zone)
    if end > (now or utcnow()):
        raise InvalidState(f"{month} has not ended yet in {zone}; close it after it ends.")


def _write_statements(
    session: Session, settlement: CommissionSettlement, level: str, subject, store
) -> None:
    """INSERT ... SELECT ... GROUP BY: one statement per guide or store, no row loop."""
    amount = CommissionEntry.amount_fen
    rows = (
        select(
            literal(settlement.id),
            literal(level),
            subject,
            literal(settlement.tenant_id),
            literal(settlement.month),
            store,
            func.count(),
            func.sum(case((amount > 0, amount), else_=0)),
            func.sum(case((amount < 0, -amount), else_=0)),
            func.sum(amount),
        )
        .where(
            CommissionEntry.tenant_id == settlement.tenant_id,
            CommissionEntry.accounting_month == settlement.month,
        )
        .group_by(subject)
    )
    session.execute(
        insert(CommissionStatement).from_select(
            [
                "settlement_id",
                "level",
                "subject_id",
                "tenant_id",
                "month",
                "store_id",
                "entries",
                "earned_fen",
                "clawed_back_fen",
                "net_fen",
            ],
            rows,
        )
    )


# --- closing a month as a job ------------------------------------------------------------

KIND = "commissions.settle"


def start_settlement(
    session: Session,
    *,
    month: str,
    actor: Actor | None = None,
    tenant_id: str | None = None,
    idempotency_key: str | None = None,
    enqueue: bool = True,
    now: datetime | None = None,
) -> tuple[jobs.Job, bool]:
    """The job closing `month` for the actor's tenant (HQ), or for `tenant_id` (cron, CLI):
    (job, True) when queued now; (job, False) when this key already started it or a close of
    the month is still under way. A month that is malformed or not over is refused here,
    before any job exists."""
    if actor is not None:
        if not actor.is_hq:
            raise Forbidden("Only HQ settles commissions.")
        tenant_id = actor.tenant_id
    assert tenant_id is not None, "an actor or a tenant_id"
    started_by = actor.staff_id if actor is not None else None
    check_month(month)
    if idempotency_key:
        earlier = find_by_key(
            session, tenant_id, started_by, idempotency_key, kind=KIND, subject=f"month:{month}"
        )
        if earlier is not None:
            return earlier, False
    _check_ended(session, tenant_id, month, now)
    return jobs.start(
        session,
        tenant_id=tenant_id,
        kind=KIND,
        params={"month": month, "closed_by": started_by},
        started_by=started_by,
        store_id=actor.store_id if actor is not None else None,
        subject=f"month:{month}",
        total=1,
        idempotency_key=idempotency_key,
        enqueue=enqueue,
    )


@jobs.kind(KIND, unit="months")
def _settle_job(ctx: jobs.JobContext) -> dict:
    """One unit: the month's statements are written in one transaction or not at all, and a
    month closed already is left as it is, so a re-run never doubles anything."""
    with ctx.unit() as session:
        settlement, created = close_month(
            session,
            tenant_id=ctx.tenant_id,
            month=ctx.params["month"],
            closed_by=ctx.params.get("closed_by"),
        )
        ctx.progress(1, 1)
    return {
        "settlement_id": settlement.id,
        "month": settlement.month,
        "created": created,
        "state": settlement.state,
        "entries": settlement.entries,
        "earned_fen": settlement.earned_fen,
        "clawed_back_fen": settlement.clawed_back_fen,
        "net_fen": settlement.net_fen,
    }


def close_for_actor(session: Session, *, actor: Actor, month: str) -> CommissionSettlement:
    """Close the month now, in the caller's transaction (`?wait=true`); the job is kept."""
    job, created = start_settlement(session, actor=actor, month=month, enqueue=False)
    if not created:
        raise InvalidState(
            f"{month} is being closed by job {job.id} ({job.state}); "
            f"follow it at {jobs.job_url(job.id)}."
        )
    result = jobs.run_inline(session, job)
    return session.get_one(CommissionSettlement, result["settlement_id"])


def get_settlement(session: Session, *, actor: Actor, settlement_id: str):
    return policy.get_visible(
        session, actor, CommissionSettlement, settlement_id, label="Settlement"
    )


def list_settlements(session: Session, *, actor: Actor, limit: int, cursor: str | None):
    stmt = policy.scoped_select(actor, CommissionSettlement)
    return paginate(
        session,
        stmt,
        [CommissionSettlement.month, CommissionSettlement.id],
        limit=limit,
        cursor=cursor,
        descending=True,
    )


def approve(session: Session, *, actor: Actor, settlement_id: str) -> CommissionSettlement:
    """Draft -> approved (HQ); approving twice is a no-op."""
    settlement = policy.get_writable(session, actor, CommissionSettlement, settlement_id, "approve")
    if settlement.state == "draft":
        settlement.state, settlement.approved_at = "approved", utcnow()
        settlement.approved_by = actor.staff_id
        session.flush()
    return settlement


def statements(
    session: Session,
    *,
    actor: Actor,
    settlement_id: str,
    level: str,
    limit: int,
    cursor: str | None,
) -> dict:
    """One page of a settled month's statements, with guide and store names."""
    settlement = get_settlement(session, actor=actor, settlement_id=settlement_id)
    stmt = policy.scoped_select(actor, CommissionStatement).where(
        CommissionStatement.settlement_id == settlement.id, CommissionStatement.level == level
    )
    page = paginate(session, stmt, [CommissionStatement.subject_id], limit=limit, cursor=cursor)
    page["items"] = present(session, page["items"])
    return page


def all_statements(session: Session, *, actor: Actor, settlement_id: str, level: str):
    settlement = get_settlement(session, actor=actor, settlement_id=settlement_id)
    rows = session.scalars(
        policy.scoped_select(actor, CommissionStatement)
        .where(
            CommissionStatement.settlement_id == settlement.id, CommissionStatement.level == level
        )
        .order_by(CommissionStatement.store_id, CommissionStatement.subject_id)
    ).all()
    return settlement, present(session, rows)


def present(session: Session, rows) -> list[dict]:
    store_ids = {r.store_id for r in rows}
    guide_ids = {r.subject_id for r in rows if r.level == "guide"}
    stores = (
        dict(session.execute(select(Store.id, Store.name).where(Store.id.in_(store_ids))).all())
        if store_ids
        else {}
    )
    guides = (
        {
            sid: (name, phone)
            for sid, name, phone in session.execute(
                select(Staff.id, Staff.name, Staff.phone).where(Staff.id.in_(guide_ids))
            )
        }
        if guide_ids
        else {}
    )
    return [
        {
            "month": r.month,
            "level": r.level,
            "subject_id": r.subject_id,
            "name": guides.get(r.subject_id, (None,))[0]
            if r.level == "guide"
            else stores.get(r.subject_id),
            "guide_phone": guides.get(r.subject_id, (None, None))[1]
            if r.level == "guide"
            else None,
            "store_id": r.store_id,
            "store_name": stores.get(r.store_id),
            "entries": r.entries,
            "earned_fen": r.earned_fen,
            "clawed_back_fen": r.clawed_back_fen,
            "net_fen": r.net_fen,
        }
        for r in rows
    ]
