"""WatermelonDB sync: pull and push (design/SYNC.md)."""

from flask import request
from flask.views import MethodView

from guideapp.errors import InvalidInput
from guideapp.extensions import Blueprint
from guideapp.pagination import CursorArgsSchema
from guideapp.sync import push as push_service
from guideapp.sync import schemas as s
from guideapp.sync import service
from guideapp.http import current_actor, db_session, read_session

blp = Blueprint("sync", __name__, url_prefix="/api/v1/sync", description="Offline sync")


@blp.route("/pull")
class Pull(MethodView):
    @blp.replica_read
    @blp.answers_empty_pull
    @blp.arguments(s.PullArgsSchema, location="query")
    @blp.response(200, s.PullResponseSchema)
    def get(self, args):
        """Changes in my scope since my cursor (a full, paged snapshot when it is null)"""
        actor = current_actor()
        needed = service.freshness_needed(
            actor, last_pulled_at=args["last_pulled_at"], page=args.get("page")
        )
        return service.pull(read_session(at_least=needed), actor=actor, **args)


@blp.route("/push")
class Push(MethodView):
    @blp.arguments(s.PushArgsSchema, location="query")
    @blp.arguments(s.PushBodySchema)
    @blp.response(200, s.PushResponseSchema)
    @blp.alt_response(409, description="Records changed on the server since last_pulled_at.")
    @blp.alt_response(413, description="More records than one push may carry (5,000).")
    def post(self, args, body):
        """Apply my queued changes at once; retry with the same Idempotency-Key"""
        if not request.headers.get("Idempotency-Key"):
            raise InvalidInput(
                "Send an Idempotency-Key per push; reuse it when retrying.",
                errors={"Idempotency-Key": ["Required for sync pushes."]},
            )
        return push_service.push(
            db_session(),
            actor=current_actor(),
            last_pulled_at=args["last_pulled_at"],
            changes=body["changes"],
        )


@blp.route("/rejections")
class Rejections(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, s.RejectionPageSchema)
    def get(self, args):
        """Offline edits kept but not applied (server won, or out of scope), newest first"""
        return service.list_rejections(db_session(), actor=current_actor(), **args)
