"""Jobs as resources: follow one, list the caller's, cancel one."""

from urllib.parse import quote

from flask import send_file
from flask.views import MethodView

from guideapp import policy
from guideapp.errors import NotFound
from guideapp.extensions import Blueprint
from guideapp.jobs import service
from guideapp.jobs import schemas as s
from guideapp.http import current_actor, db_session, extension

blp = Blueprint(
    "jobs", __name__, url_prefix="/api/v1", description="Long work: state, progress, result"
)


@blp.route("/jobs")
class Jobs(MethodView):
    @blp.arguments(s.JobListArgsSchema, location="query")
    @blp.response(200, s.JobPageSchema)
    def get(self, args):
        """The jobs I may follow, newest first (HQ: the tenant's; manager: the store's)"""
        return service.list_jobs(
            db_session(), actor=current_actor(), visible=policy.visible, **args
        )


@blp.route("/jobs/<job_id>")
class JobById(MethodView):
    @blp.response(200, s.JobSchema)
    def get(self, job_id):
        """One job: state, progress, timings, result or error"""
        return service.get(
            db_session(), actor=current_actor(), job_id=job_id, visible=policy.visible
        )


@blp.route("/jobs/<job_id>/cancel")
class CancelJob(MethodView):
    @blp.response(200, s.JobSchema)
    def post(self, job_id):
        """Cancel: a queued job at once, a running one before its next unit of work"""
        session, actor = db_session(), current_actor()
        job = service.get(session, actor=actor, job_id=job_id, visible=policy.visible)
        policy.require_write(actor, job, "cancel")
        return service.cancel(session, job=job)


@blp.route("/jobs/<job_id>/download")
class JobDownload(MethodView):
    @blp.response(
        200,
        content_type="application/octet-stream",
        description="The job's file (an export): its own content type, as an attachment",
    )
    def get(self, job_id):
        """The file a job produced (an export), once it has succeeded (409 before)

        Seen exactly as the job is: another store's or tenant's job is a 404. The file is
        sent in chunks as an attachment named in `Content-Disposition` (RFC 5987
        `filename*` for Chinese names).
        """
        file = service.download(
            db_session(), actor=current_actor(), job_id=job_id, visible=policy.visible
        )
        try:
            path = extension("storage").path(file["key"])
        except FileNotFoundError:
            raise NotFound(
                f"The file of job {job_id} is no longer stored; start the export again."
            ) from None
        response = send_file(path, mimetype=file["content_type"], max_age=0)
        response.headers["Content-Disposition"] = _attachment(
            file["filename"], file.get("ascii_filename")
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "private, no-store"
        return response


def _attachment(name: str, ascii_name: str | None) -> str:
    """RFC 6266 / 5987: `filename*` in UTF-8 for any script, `filename` for old clients."""
    fallback = (ascii_name or name).encode("ascii", "replace").decode().replace('"', "")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
