"""Quick replies: list, write with ETags, render for a member, categories, Excel import."""

from flask.views import MethodView

from guideapp.extensions import Blueprint
from guideapp.replies import imports, service
from guideapp.replies import schemas as s
from guideapp.http import current_actor, db_session, scoped_read_session


blp = Blueprint("replies", __name__, url_prefix="/api/v1", description="Quick replies")


@blp.route("/quick-replies")
class QuickReplies(MethodView):
    @blp.replica_read
    @blp.arguments(s.ReplyListArgsSchema, location="query")
    @blp.response(200, s.QuickReplyPageSchema)
    def get(self, args):
        """Quick replies for me, most used first: HQ's, my store's and my own"""
        return service.list_replies(scoped_read_session(), actor=current_actor(), **args)

    @blp.etag
    @blp.arguments(s.QuickReplySchema)
    @blp.response(201, s.QuickReplySchema)
    def post(self, data):
        """Write a quick reply (HQ: hq level; manager: the store's; anyone: personal)"""
        reply = service.create_reply(db_session(), actor=current_actor(), data=data)
        blp.set_etag(reply, s.QuickReplyEtagSchema)
        return reply


@blp.route("/quick-replies/<reply_id>")
@blp.etag
class QuickReplyById(MethodView):
    @blp.response(200, s.QuickReplySchema)
    def get(self, reply_id):
        """One quick reply, with its ETag for an If-Match on PATCH / DELETE"""
        reply = service.get_reply(db_session(), actor=current_actor(), reply_id=reply_id)
        blp.set_etag(reply, s.QuickReplyEtagSchema)
        return reply

    @blp.arguments(s.QuickReplyPatchSchema)
    @blp.response(200, s.QuickReplySchema)
    def patch(self, data, reply_id):
        """Edit a quick reply; If-Match required (428 without, 412 when someone saved first)"""
        actor = current_actor()
        reply = service.get_reply(db_session(), actor=actor, reply_id=reply_id, action="update")
        blp.check_etag(reply, s.QuickReplyEtagSchema)
        reply = service.update_reply(db_session(), actor=actor, reply=reply, data=data)
        blp.set_etag(reply, s.QuickReplyEtagSchema)
        return reply

    @blp.response(204)
    def delete(self, reply_id):
        """Delete a quick reply; If-Match required; phones drop it at the next sync"""
        actor = current_actor()
        reply = service.get_reply(db_session(), actor=actor, reply_id=reply_id, action="delete")
        blp.check_etag(reply, s.QuickReplyEtagSchema)
        service.delete_reply(db_session(), actor=actor, reply=reply)


@blp.route("/quick-replies/<reply_id>/render")
class RenderReply(MethodView):
    @blp.arguments(s.RenderRequestSchema)
    @blp.response(200, s.RenderedReplySchema)
    def post(self, data, reply_id):
        """The reply's text for a member, placeholders filled from the member card"""
        return service.render_reply(
            db_session(), actor=current_actor(), reply_id=reply_id, member_id=data["member_id"]
        )


@blp.route("/quick-replies/import")
class ImportReplies(MethodView):
    @blp.arguments(s.ReplyImportArgsSchema, location="query")
    @blp.arguments(s.ReplyImportFileSchema, location="files")
    @blp.response(200, s.ReplyImportReportSchema)
    def post(self, args, files):
        """Import HQ quick replies from .xlsx or CSV: 场景, 分类, 标题, 内容, 标签 (HQ)"""
        upload = files["file"]
        return imports.import_replies(
            db_session(),
            actor=current_actor(),
            filename=upload.filename or "",
            content=upload.read(),
            dry_run=args["dry_run"],
        )


@blp.route("/reply-categories")
class ReplyCategories(MethodView):
    @blp.arguments(s.ReplyCategoryArgsSchema, location="query")
    @blp.response(200, s.ReplyCategoryPageSchema)
    def get(self, args):
        """Reply categories: HQ's and my store's"""
        return service.list_categories(db_session(), actor=current_actor(), **args)

    @blp.arguments(s.ReplyCategorySchema)
    @blp.response(201, s.ReplyCategorySchema)
    def post(self, data):
        """Add a category (HQ: for everyone; manager: for the store)"""
        return service.create_category(db_session(), actor=current_actor(), data=data)
