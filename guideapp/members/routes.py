"""Member cards, search, notes, tags, binding, transfer, merge, points, orders and imports."""

import marshmallow as ma
from flask import current_app
from flask.views import MethodView

from guideapp.extensions import Blueprint
from guideapp.members import feeds, import_rows, imports, lifecycle, merge, service, tags
from guideapp.members import schemas as s
from guideapp.members.access import sees_others_phones
from guideapp.pagination import CursorArgsSchema
from guideapp.http import current_actor, db_session
from guideapp.jobs.http import LOCATION_HEADER, accepted, answer, idempotency_key
from guideapp.jobs.schemas import JobSchema, WaitArgsSchema

blp = Blueprint("members", __name__, url_prefix="/api/v1", description="Member cards")


@blp.route("/members")
class Members(MethodView):
    @blp.writes_on_get(when=sees_others_phones)  # their look is audited (phones_viewed)
    @blp.arguments(s.MemberSearchArgsSchema, location="query")
    @blp.response(200, s.MemberPageSchema)
    def get(self, args):
        """Search my members (guide: bound to me and my store's pool; manager: store; HQ)"""
        return service.search(db_session(), actor=current_actor(), **args)

    @blp.arguments(s.MemberRegisterSchema)
    @blp.response(201, s.MemberSchema)
    def post(self, data):
        """Register a new member in store; they are bound to the recruiting guide"""
        actor = current_actor()
        return service.present(actor, service.register(db_session(), actor=actor, data=data))


@blp.route("/settings/lifecycle")
class LifecycleRules(MethodView):
    @blp.response(200, s.LifecycleRulesSchema)
    def get(self):
        """The lifecycle stage rules of my brand group"""
        return lifecycle.rules_for(db_session(), current_actor().tenant_id)

    @blp.arguments(s.LifecycleRulesSchema)
    @blp.response(200, s.LifecycleRulesSchema)
    def put(self, data):
        """Set the lifecycle stage rules (HQ), e.g. regular = 3 orders in 180 days"""
        return lifecycle.set_rules(db_session(), actor=current_actor(), data=data)


@blp.route("/members/<member_id>/card")
class MemberCard(MethodView):
    @blp.response(200, s.CardSchema)
    def get(self, member_id):
        """The member card: profile, points, tags, orders, guide, notes, tasks, care dates"""
        return service.card(db_session(), actor=current_actor(), member_id=member_id)


@blp.route("/members/<member_id>/notes")
class MemberNotes(MethodView):
    @blp.arguments(s.NoteSchema)
    @blp.response(201, s.NoteSchema)
    def post(self, data, member_id):
        """Write a follow-up note"""
        return service.add_note(
            db_session(),
            actor=current_actor(),
            member_id=member_id,
            body=data["body"],
            noted_at=data.get("noted_at"),
            note_id=data.get("id"),
        )


@blp.route("/members/<member_id>/tags")
class MemberTags(MethodView):
    @blp.arguments(s.TagMemberSchema)
    @blp.response(200, s.TagGroupOnCardSchema(many=True))
    def post(self, data, member_id):
        """Tag a member (idempotent); returns the member's tags by group"""
        return service.tag(
            db_session(), actor=current_actor(), member_id=member_id, tag_ids=data["tag_ids"]
        )


@blp.route("/members/<member_id>/tags/<tag_id>")
class MemberTag(MethodView):
    @blp.response(204)
    def delete(self, member_id, tag_id):
        """Remove a tag from a member"""
        service.untag(db_session(), actor=current_actor(), member_id=member_id, tag_id=tag_id)


@blp.route("/members/<member_id>/questionnaire")
class MemberQuestionnaire(MethodView):
    @blp.arguments(s.QuestionnaireSchema)
    @blp.response(200, s.TagGroupOnCardSchema(many=True))
    def post(self, data, member_id):
        """Record questionnaire answers; the code book turns them into tags"""
        return service.questionnaire(
            db_session(),
            actor=current_actor(),
            member_id=member_id,
            name=data["questionnaire"],
            answers=data["answers"],
        )


@blp.route("/members/<member_id>/binding")
class MemberBinding(MethodView):
    @blp.arguments(s.AssignSchema)
    @blp.response(200, s.MemberSchema)
    def post(self, data, member_id):
        """Bind to a guide (managers / HQ; a guide may claim from the store pool)"""
        actor = current_actor()
        member = service.assign(
            db_session(), actor=actor, member_id=member_id, guide_id=data["guide_id"]
        )
        return service.present(actor, member)


@blp.route("/members/transfer")
class MemberTransfer(MethodView):
    @blp.arguments(s.TransferSchema)
    @blp.response(200, s.TransferResultSchema)
    def post(self, data):
        """Move members (all or listed) to another guide with their open tasks and future
        commissions"""
        return service.transfer(
            db_session(),
            actor=current_actor(),
            from_guide_id=data["from_guide_id"],
            to_guide_id=data["to_guide_id"],
            member_ids=data.get("member_ids"),
        )


@blp.route("/members/<member_id>/merge")
class MemberMerge(MethodView):
    @blp.arguments(s.MergeSchema)
    @blp.response(200, s.MergeResultSchema)
    def post(self, data, member_id):
        """Merge a duplicate into this member (HQ): everything moves, nothing doubles"""
        return merge.merge_members(
            db_session(), actor=current_actor(), survivor_id=member_id, merged_id=data["merged_id"]
        )


@blp.route("/members/<member_id>/points")
class MemberPoints(MethodView):
    @blp.arguments(s.PointsSchema)
    @blp.response(201, s.PointsResultSchema)
    def post(self, data, member_id):
        """Earn, spend, expire or adjust points (HQ, store manager)"""
        return service.adjust_points(
            db_session(),
            actor=current_actor(),
            member_id=member_id,
            kind=data["kind"],
            amount=data["points"],
            reason=data["reason"],
        )


@blp.route("/orders")
class Orders(MethodView):
    @blp.arguments(s.OrderInSchema)
    @blp.response(200, s.OrderResultSchema)
    def post(self, data):
        """Ingest an order from any channel (HQ integration); replays are harmless"""
        order, created = feeds.feed_order(db_session(), actor=current_actor(), data=data)
        return {"order": order, "created": created}


@blp.route("/orders/refunds")
class Refunds(MethodView):
    @blp.arguments(s.RefundInSchema)
    @blp.response(200, s.RefundResultSchema)
    @blp.alt_response(404, description="No order with this channel and order_no.")
    def post(self, data):
        """Record a refund or partial refund of an order (HQ integration)"""
        refund, created = feeds.feed_refund(db_session(), actor=current_actor(), data=data)
        return {
            "id": refund.id,
            "order_id": refund.order_id,
            "refund_no": refund.refund_no,
            "amount_fen": refund.amount_fen,
            "created": created,
        }


@blp.route("/tag-groups")
class TagGroups(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, s.TagGroupPageSchema)
    def get(self, args):
        """Tag groups I can use (HQ's and my store's)"""
        return service.list_tag_groups(db_session(), actor=current_actor(), **args)

    @blp.arguments(s.TagGroupSchema)
    @blp.response(201, s.TagGroupSchema)
    def post(self, data):
        """Create a tag group (HQ; managers create store-level groups)"""
        return tags.create_group(
            db_session(), actor=current_actor(), name=data["name"], store_level=data["store_level"]
        )


@blp.route("/tag-groups/<group_id>/tags")
class GroupTags(MethodView):
    @blp.arguments(s.TagSchema)
    @blp.response(201, s.TagSchema)
    def post(self, data, group_id):
        """Add a tag to a group"""
        return tags.create_tag(
            db_session(),
            actor=current_actor(),
            group_id=group_id,
            name=data["name"],
            code=data.get("code"),
        )


@blp.route("/tags")
class Tags(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, s.TagPageSchema)
    def get(self, args):
        """Tags I can use"""
        return service.list_tags(db_session(), actor=current_actor(), **args)


@blp.route("/questionnaire-codes")
class QuestionnaireCodes(MethodView):
    @blp.arguments(s.QuestionnaireCodeSchema)
    @blp.response(201, s.QuestionnaireCodeSchema)
    def post(self, data):
        """Add an entry to a questionnaire code book (HQ): answer -> tag"""
        return tags.add_code(db_session(), actor=current_actor(), **data)


class ImportArgsSchema(WaitArgsSchema):
    dry_run = ma.fields.Boolean(
        load_default=False, metadata={"description": "Validate and report, write nothing."}
    )
    mode = ma.fields.String(
        load_default="fill",
        validate=ma.validate.OneOf(imports.MODES),
        metadata={
            "description": "Members: `fill` (default) only fills what a member lacks; "
            "`overwrite` lets filled cells replace the member's values. Empty cells never "
            "blank anything; phones and unionids are never replaced. Orders: `fill` only."
        },
    )


class ImportFileSchema(ma.Schema):
    file = ma.fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


@blp.route("/imports/<kind>")
class Imports(MethodView):
    @blp.arguments(ImportArgsSchema, location="query")
    @blp.arguments(ImportFileSchema, location="files")
    @blp.response(202, JobSchema, headers=LOCATION_HEADER)
    @blp.alt_response(200, schema=s.ImportReportSchema, description="With ?wait=true")
    def post(self, args, files, kind):
        """Import members or orders from a CSV or .xlsx file (HQ), as a job; every row is reported

        Answers 202 with the job (`Location: /api/v1/jobs/<id>`; progress in rows; its result
        is the row report) once the file is stored and what needs no work is checked: the
        kind, the file type and encoding, the header's required columns, a CSV's row count.
        `?wait=true` imports inside the request and answers 200 with the report, as before
        jobs existed (small files: the request may time out).

        imported + updated + unchanged + failed = rows; failed rows have `errors`, unchanged
        rows (and values a row kept) have `notes` saying why (the first 1,000 of each;
        `errors_total` and `notes_total` count them all). A file with more rows than
        GUIDEAPP_IMPORT_MAX_ROWS, or an .xlsx inflating past GUIDEAPP_IMPORT_MAX_XLSX_MB, is
        a 413 and nothing is written (a workbook whose size shows only when read fails its
        job with that message, before any row is written)."""
        upload = files["file"]
        config = current_app.config
        options = dict(
            kind=kind,
            filename=upload.filename or "",
            file=upload.stream,
            dry_run=args["dry_run"],
            mode=args["mode"],
            limits=import_rows.Limits(
                max_rows=config["IMPORT_MAX_ROWS"],
                max_xlsx_bytes=config["IMPORT_MAX_XLSX_MB"] * 1024 * 1024,
            ),
        )
        session, actor = db_session(), current_actor()
        options["batch_rows"] = config["IMPORT_BATCH_ROWS"]
        if args["wait"]:
            return answer(_REPORT, feeds.import_file(session, actor=actor, **options), 200)
        job, _ = feeds.start_import(
            session, actor=actor, idempotency_key=idempotency_key(), **options
        )
        return accepted(job)


_REPORT = s.ImportReportSchema()
