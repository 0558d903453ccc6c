"""What a job looks like to callers (never its traceback), and the ?wait=true switch."""

import marshmallow as ma
from marshmallow import fields, validate

from guideapp.jobs.models import STATES
from guideapp.pagination import CursorArgsSchema, page_schema


class JobProgressSchema(ma.Schema):
    done = fields.Integer(metadata={"description": "Units finished so far."})
    total = fields.Integer(allow_none=True, metadata={"description": "Units in all, if known."})
    unit = fields.String(metadata={"description": "What is counted: stores, months, rows..."})


class JobSchema(ma.Schema):
    id = fields.String()
    kind = fields.String(metadata={"description": "e.g. campaign.publish, commissions.settle"})
    state = fields.String(metadata={"description": " / ".join(STATES)})
    progress = fields.Nested(JobProgressSchema)
    result = fields.Dict(
        allow_none=True, metadata={"description": "What the job produced, once it succeeded."}
    )
    error = fields.String(
        allow_none=True,
        metadata={"description": "Why it failed (or the last error it is retrying after)."},
    )
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    cancel_requested = fields.Boolean()
    started_by = fields.String(allow_none=True)
    store_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()
    url = fields.Method(
        "_url", metadata={"type": "string", "description": "Where to follow it (GET)."}
    )

    def _url(self, job):
        from guideapp.jobs.service import job_url

        return job_url(job.id)


JobPageSchema = page_schema(JobSchema, "JobPage")


class JobListArgsSchema(CursorArgsSchema):
    state = fields.String(validate=validate.OneOf(STATES))
    kind = fields.String(validate=validate.Length(max=64))


class WaitArgsSchema(ma.Schema):
    wait = fields.Boolean(
        load_default=False,
        metadata={
            "description": "true: run the work now, inside this request, and answer with its "
            "result as before jobs existed (old clients; small work only: the request may "
            "time out). Default: answer 202 with the job at once."
        },
    )
