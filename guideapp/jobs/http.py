"""What routes that start jobs share: the 202 answer with Location, and ?wait=true."""

from __future__ import annotations

from flask import current_app, request

from guideapp.jobs.schemas import JobSchema
from guideapp.jobs.service import job_url

LOCATION_HEADER = {"Location": {"schema": {"type": "string"}, "description": "The job's URL"}}
_JOB = JobSchema()


def idempotency_key() -> str | None:
    return request.headers.get("Idempotency-Key")


def accepted(job):
    """202 with the job and its Location; return it from a view whose response is JobSchema."""
    return job, 202, {"Location": job_url(job.id)}


def answer(schema, data, status: int):
    """A ?wait=true answer in the route's old shape (views documented as 202 JobSchema)."""
    body = current_app.json.dumps(schema.dump(data))
    return current_app.response_class(body, status=status, mimetype="application/json")
