"""Who may see and cancel which job: registered with the policy by `register()`.

HQ sees the tenant's jobs, a manager their store's, anyone else the jobs they started.
Outside these a job is "not found" (404), whether it exists or not.
"""

from __future__ import annotations

from sqlalchemy import true

from guideapp import policy
from guideapp.jobs.models import Job


def _jobs(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return Job.store_id == actor.store_id
    return Job.started_by == actor.staff_id


def _job_writes(actor, job, action):
    if action != "cancel":
        return False
    if actor.is_hq:
        return True
    if actor.is_manager:
        return job.store_id == actor.store_id
    return job.started_by == actor.staff_id


def register() -> None:
    policy.register_rules(Job, read=_jobs, write=_job_writes)
