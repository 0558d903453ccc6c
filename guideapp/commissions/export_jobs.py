"""Exporting a settled month's statements as a job: the file is written to the storage in
pieces and downloaded from the job (`GET /api/v1/jobs/<id>/download`).

An export writes nothing to the database, so it is one unit of work that can simply be
redone: the file is built outside any unit (reading in batches, streaming to a scratch file,
so memory does not grow with the ledger), then one short unit records the stored file and
the progress. A worker that dies while building loses only the scratch file; the job runs
again from the start. One that dies after the unit finds the file in its checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp.org.service import active_actor
from guideapp import audit, jobs, policy, storage
from guideapp.commissions import export
from guideapp.commissions.models import CommissionSettlement, CommissionStatement
from guideapp.commissions.settlement import get_settlement, present
from guideapp.errors import DomainError, NotFound
from guideapp.policy.actor import Actor

KIND = "commissions.export"
BATCH = 1000  # statements read, named and written per round trip


def start_export(
    session: Session,
    *,
    actor: Actor,
    settlement_id: str,
    level: str,
    fmt: str,
    idempotency_key: str | None = None,
) -> tuple[jobs.Job, bool]:
    """The job exporting the settlement's statements (HQ): (job, True) when queued now;
    (job, False) for the job this key started, or the same export still under way. A
    settlement the caller cannot see is a 404 here, before any job exists."""
    settlement = get_settlement(session, actor=actor, settlement_id=settlement_id)
    rows = session.scalar(
        select(func.count())
        .select_from(CommissionStatement)
        .where(_statements_of(actor, settlement, level))
    )
    _audit(session, actor, settlement.id, level=level, fmt=fmt, rows=rows)
    return jobs.start(
        session,
        tenant_id=actor.tenant_id,
        kind=KIND,
        params={"settlement_id": settlement.id, "level": level, "format": fmt},
        started_by=actor.staff_id,
        store_id=actor.store_id,
        subject=f"export:{settlement.id}:{level}:{fmt}",
        total=rows,
        idempotency_key=idempotency_key,
    )


def export_now(
    session: Session, *, actor: Actor, settlement_id: str, level: str, fmt: str
) -> tuple[bytes, str]:
    """The statements built inside the request (old clients): (file bytes, file name)."""
    from guideapp.commissions import export
    from guideapp.commissions.settlement import all_statements

    closed, rows = all_statements(session, actor=actor, settlement_id=settlement_id, level=level)
    _audit(session, actor, closed.id, level=level, fmt=fmt, rows=len(rows))
    body = (export.to_xlsx if fmt == "xlsx" else export.to_csv)(closed, level, rows)
    return body, export.filename(closed, level, fmt)


@jobs.kind(KIND, unit="rows")
def _export_job(ctx: jobs.JobContext) -> dict:
    level, fmt = ctx.params["level"], ctx.params["format"]
    kept = ctx.checkpoint.get("file")
    if kept is None:
        with ctx.reading() as session:
            actor = _starter(session, ctx)
            settlement = _settlement(session, actor, ctx.params["settlement_id"])
            statements = stream_statements(session, actor, settlement, level)
            with storage.of(session).writing(suffix=f".{fmt}") as new:
                if fmt == "csv":
                    with new.path.open("wb") as out:
                        rows = export.write_csv(out, level, statements)
                else:
                    rows = export.write_xlsx(str(new.path), settlement, level, statements)
            assert new.stored is not None
            title = export.file_title(settlement, level, fmt)
            ascii_title = export.filename(settlement, level, fmt)
        with ctx.unit():
            ctx.keep_file(
                key=new.stored.key,
                filename=title,
                ascii_filename=ascii_title,
                content_type=export.MIMETYPES[fmt],
                size=new.stored.size,
            )
            ctx.checkpoint["rows"] = rows
            ctx.progress(rows, rows)
        kept = ctx.checkpoint["file"]
    return {
        "settlement_id": ctx.params["settlement_id"],
        "level": level,
        "format": fmt,
        "download_url": f"{jobs.job_url(ctx.job_id)}/download",
        "filename": kept["filename"],
        "content_type": kept["content_type"],
        "size": kept["size"],
        "rows": ctx.checkpoint["rows"],
    }


def stream_statements(
    session: Session, actor: Actor, settlement: CommissionSettlement, level: str
) -> Iterator[dict]:
    """The statements in the synchronous export's order, named, a batch at a time (the
    names of a batch's guides and stores in two queries, never one per row)."""
    result = session.scalars(
        select(CommissionStatement)
        .where(_statements_of(actor, settlement, level))
        .order_by(CommissionStatement.store_id, CommissionStatement.subject_id)
        .execution_options(yield_per=BATCH)
    )
    for batch in result.partitions():
        yield from present(session, batch)
        session.expunge_all()  # what was written need not stay in the identity map


def _statements_of(actor: Actor, settlement: CommissionSettlement, level: str):
    return policy.visible(actor, CommissionStatement) & (
        (CommissionStatement.settlement_id == settlement.id) & (CommissionStatement.level == level)
    )


def _audit(session: Session, actor: Actor, settlement_id: str, **details) -> None:
    audit.record(
        session,
        tenant_id=actor.tenant_id,
        staff_id=actor.staff_id,
        action="commissions.export",
        target_kind="settlement",
        target_id=settlement_id,
        details={"format": details.pop("fmt"), **details},
    )


def _starter(session: Session, ctx: jobs.JobContext) -> Actor:
    """The export shows what its starter may see now, as when they asked for it."""
    actor = active_actor(session, tenant_id=ctx.tenant_id, staff_id=ctx.started_by)
    if actor is None:
        raise DomainError(
            "The person who asked for this export no longer works here; "
            "ask someone at HQ to export the month again."
        )
    return actor


def _settlement(session: Session, actor: Actor, settlement_id: str) -> CommissionSettlement:
    try:
        return get_settlement(session, actor=actor, settlement_id=settlement_id)
    except NotFound:
        raise DomainError(
            f"Settlement {settlement_id} is no longer visible to the person who asked for "
            "this export (their role changed?); ask someone at HQ to export it again."
        ) from None
