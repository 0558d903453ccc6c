"""Job kinds that exist only in tests, and jobs started by anyone (imports by a guide or a
manager will start jobs too; publish and settlement are HQ's)."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from guideapp import jobs
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE, RIVAL_HQ
from tests.factories import staff_by_phone

COLLEAGUE = "13913775684"  # another guide of SH001


@jobs.kind("test.noop", unit="things")
def _noop(ctx):
    with ctx.unit():
        ctx.progress(1, 1)
    return {"echo": ctx.params.get("echo")}


@jobs.kind("test.flaky", unit="tries")
def _flaky(ctx):
    """Loses its database connection on the first `failures` attempts, then succeeds."""
    with ctx.unit():
        ctx.progress(ctx.attempt, ctx.attempt)
    if ctx.attempt <= ctx.params["failures"]:
        raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))
    return {"attempt": ctx.attempt}


@jobs.kind("test.broken", unit="things")
def _broken(ctx):
    with ctx.unit():
        ctx.progress(0, 1)
    raise KeyError("a bug deep down")


@jobs.kind("test.steps", unit="steps")
def _steps(ctx):
    """`steps` units, each recorded in its checkpoint."""
    steps = ctx.params.get("steps", 3)
    for step in range(ctx.checkpoint.get("step", 0), steps):
        with ctx.unit():
            ctx.checkpoint["step"] = step + 1
            ctx.progress(step + 1, steps)
    return {"steps": ctx.checkpoint.get("step", 0)}


def make_job(session, phone: str, *, kind: str = "test.noop", queue=None, **start) -> jobs.Job:
    """A job started by `phone`; on `queue` (an app's JobQueue) when given."""
    staff = staff_by_phone(session, phone)
    if queue is not None:
        start.setdefault("max_attempts", queue.settings.max_attempts)
    job, created = jobs.start(
        session,
        tenant_id=staff.tenant_id,
        kind=kind,
        started_by=staff.id,
        store_id=staff.store_id,
        enqueue=False,
        **start,
    )
    session.flush()
    if queue is not None and created:
        queue.enqueue(job.id)
    return job


def foreign_jobs(session, caller: str) -> list[str]:
    """Jobs the caller must not see: another tenant's, another store's, a colleague's, HQ's."""
    if caller == RIVAL_HQ:
        return [make_job(session, HQ).id, make_job(session, GUIDE).id]
    rival = make_job(session, RIVAL_HQ).id
    if caller == HQ:
        return [rival]
    others = [rival, make_job(session, OTHER_GUIDE).id, make_job(session, HQ).id]
    if caller == MANAGER:
        return others
    return [*others, make_job(session, COLLEAGUE).id, make_job(session, MANAGER).id]
