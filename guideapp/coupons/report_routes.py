"""HQ's bulk issue to a segment (a job) and the coupon reports (a page, an xlsx job)."""

from flask import current_app
from flask.views import MethodView

from guideapp.coupons import bulk, report_export, reports
from guideapp.coupons import report_schemas as s
from guideapp.coupons.routes import blp
from guideapp.http import current_actor, db_session
from guideapp.jobs.http import LOCATION_HEADER, accepted, idempotency_key
from guideapp.jobs.schemas import JobSchema


@blp.route("/coupon-templates/<template_id>/issue")
class BulkIssue(MethodView):
    @blp.arguments(s.BulkIssueSchema)
    @blp.response(202, JobSchema, headers=LOCATION_HEADER)
    @blp.alt_response(409, description="The template is paused or its stock is used up.")
    def post(self, data, template_id):
        """Issue the coupon to a segment of members (HQ), as a job: 202 with the job

        The job (`coupons.bulk_issue`, progress in members) issues one coupon to each
        member of the segment (the campaign segment's criteria), at home in `store_ids` or
        `region_ids` when given, exactly once per member even when rerun; the per-member
        limit and the stock apply (members past the stock count as `out_of_stock` and the
        job still succeeds). Its result: `{template_id, members, issued, skipped: {reason:
        count}}`. Cancelling keeps the coupons already issued.
        """
        job, _ = bulk.start_bulk_issue(
            db_session(),
            actor=current_actor(),
            template_id=template_id,
            data=data,
            idempotency_key=idempotency_key(),
            batch=current_app.config["COUPON_ISSUE_BATCH"],
        )
        return accepted(job)


@blp.route("/coupons/report")
class Report(MethodView):
    @blp.arguments(s.ReportArgsSchema, location="query")
    @blp.response(200, s.ReportSchema)
    def get(self, args):
        """Issued, redeemed, redemption rate, discount, orders and GMV per template,
        campaign, rule, guide, store or local day (HQ: the tenant; manager: their store)"""
        session, actor = db_session(), current_actor()
        group_by = args.pop("group_by")
        checked = reports.scope(session, actor=actor, **args)
        return reports.report(session, scope=checked, group_by=group_by)


@blp.route("/coupons/report/exports")
class ReportExports(MethodView):
    @blp.arguments(s.ReportArgsSchema)
    @blp.response(202, JobSchema, headers=LOCATION_HEADER)
    def post(self, data):
        """Export the coupon report as .xlsx, as a job: 202; download its file when done

        The job (`coupons.report_export`) writes the workbook to the file storage; once it
        has succeeded its result has `download_url` (`/api/v1/jobs/<id>/download`),
        `filename`, `size`, `rows` and `content_type`.
        """
        job, _ = report_export.start_export(
            db_session(), actor=current_actor(), idempotency_key=idempotency_key(), **data
        )
        return accepted(job)
