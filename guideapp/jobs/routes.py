"""Jobs as resources: follow one, list the caller's, cancel one."""

from flask.views import MethodView

from guideapp import policy
from guideapp.extensions import Blueprint
from guideapp.jobs import service
from guideapp.jobs import schemas as s
from guideapp.http import current_actor, db_session

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
