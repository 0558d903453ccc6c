"""Job kinds that exist only in tests, and jobs started by anyone (imports by a guide or a
manager will start jobs too; publish and settlement are HQ's)."""

from __future__ import annotations

import threading

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


GATE = threading.Event()  # test.gated waits here between its units


@jobs.kind("test.gated", unit="steps")
def _gated(ctx):
    for step in range(ctx.checkpoint.get("step", 0), ctx.params.get("steps", 3)):
        with ctx.unit():
            ctx.checkpoint["step"] = step + 1
            ctx.progress(step + 1, ctx.params.get("steps", 3))
    return {"steps": ctx.checkpoint["step"]}


def make_job(session, phone: str, *, kind: str = "test.noop", **start) -> jobs.Job:
    staff = staff_by_phone(session, phone)
    job, _ = jobs.start(
        session,
        tenant_id=staff.tenant_id,
        kind=kind,
        started_by=staff.id,
        store_id=staff.store_id,
        enqueue=start.pop("enqueue", False),
        **start,
    )
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
