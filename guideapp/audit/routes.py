"""The audit log over HTTP (HQ)."""

from flask.views import MethodView

from guideapp import policy
from guideapp.audit import schemas as s
from guideapp.audit import service
from guideapp.extensions import Blueprint
from guideapp.http import current_actor, db_session

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="Audit log")


@blp.route("/audit")
class AuditLog(MethodView):
    @blp.arguments(s.AuditArgsSchema, location="query")
    @blp.response(200, s.AuditPageSchema)
    def get(self, args):
        """Who exported, viewed phones in bulk, merged, transferred or changed roles (HQ)"""
        actor = current_actor()
        policy.require(actor, "audit.read")
        return service.list_entries(db_session(), actor=actor, **args)
