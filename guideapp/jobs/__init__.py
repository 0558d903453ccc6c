"""Long work as jobs (docs/jobs.md): domains register kinds and start jobs through here.

    from guideapp import jobs

    @jobs.kind("campaign.publish", unit="stores")
    def _publish(ctx): ...                       # units of work: `with ctx.unit() as s:`

    job, created = jobs.start(session, tenant_id=..., kind="campaign.publish", ...)

Nobody imports huey but guideapp/jobs/queue.py.
"""

from guideapp.jobs.kinds import UNIT_HOOKS, kind
from guideapp.jobs.models import Job
from guideapp.jobs.runner import STOPS, JobContext, is_transient, run_inline
from guideapp.jobs.service import ensure_due, job_url, start

__all__ = [
    "STOPS",
    "UNIT_HOOKS",
    "ensure_due",
    "Job",
    "JobContext",
    "is_transient",
    "job_url",
    "kind",
    "run_inline",
    "start",
]
