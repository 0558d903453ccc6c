"""Commission rules (HQ), my earnings, entries, settlements, exports and leaderboards."""

from flask import Response
from flask.views import MethodView

from guideapp.commissions import export, export_jobs, leaderboards, service, settlement
from guideapp.commissions import schemas as s
from guideapp.extensions import Blueprint
from guideapp.jobs.http import LOCATION_HEADER, accepted, answer, idempotency_key
from guideapp.jobs.schemas import JobSchema, WaitArgsSchema
from guideapp.pagination import CursorArgsSchema
from guideapp.http import current_actor, db_session

blp = Blueprint(
    "commissions",
    __name__,
    url_prefix="/api/v1",
    description="Guide incentives: commission rules, ledger, settlement",
)

MIMETYPES = export.MIMETYPES


@blp.route("/commissions/me")
class MyEarnings(MethodView):
    @blp.arguments(s.CommissionMonthArgsSchema, location="query")
    @blp.response(200, s.MyEarningsSchema)
    def get(self, args):
        """My earnings in a month: pending vs settled, each entry in words"""
        return service.my_earnings(db_session(), actor=current_actor(), **args)


@blp.route("/commissions/entries")
class Entries(MethodView):
    @blp.arguments(s.CommissionEntryArgsSchema, location="query")
    @blp.response(200, s.EntryPageSchema)
    def get(self, args):
        """Ledger entries: a guide's own, a manager's store's, HQ's all"""
        return service.list_entries(db_session(), actor=current_actor(), **args)


@blp.route("/commissions/entries/<entry_id>")
class EntryById(MethodView):
    @blp.response(200, s.CommissionEntrySchema)
    def get(self, entry_id):
        """One ledger entry with its rule version, member and source event"""
        return service.get_entry(db_session(), actor=current_actor(), entry_id=entry_id)


@blp.route("/commissions/rules")
class Rules(MethodView):
    @blp.arguments(s.CommissionRuleArgsSchema, location="query")
    @blp.response(200, s.RulePageSchema)
    def get(self, args):
        """Commission rule versions, newest first"""
        return service.list_rules(db_session(), actor=current_actor(), **args)

    @blp.arguments(s.CommissionRuleInSchema)
    @blp.response(201, s.CommissionRuleSchema)
    def post(self, data):
        """Create a rule (HQ): bounty, tiers or a percentage of orders, with a scope and cap"""
        return service.create_rule(db_session(), actor=current_actor(), data=data)


@blp.route("/commissions/rules/<rule_id>")
class RuleById(MethodView):
    @blp.response(200, s.CommissionRuleSchema)
    def get(self, rule_id):
        """One rule version"""
        return service.get_rule(db_session(), actor=current_actor(), rule_id=rule_id)


@blp.route("/commissions/rules/<rule_id>/versions")
class RuleVersions(MethodView):
    @blp.arguments(s.CommissionRuleVersionSchema)
    @blp.response(201, s.CommissionRuleSchema)
    def post(self, data, rule_id):
        """A new version superseding the rule from its effective date (HQ); earnings stay"""
        return service.new_version(db_session(), actor=current_actor(), rule_id=rule_id, data=data)


@blp.route("/commissions/settlements")
class Settlements(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, s.SettlementPageSchema)
    def get(self, args):
        """Closed months, newest first (HQ)"""
        return settlement.list_settlements(db_session(), actor=current_actor(), **args)

    @blp.arguments(WaitArgsSchema, location="query")
    @blp.arguments(s.CloseMonthSchema)
    @blp.response(202, JobSchema, headers=LOCATION_HEADER)
    @blp.alt_response(201, schema=s.CommissionSettlementSchema, description="With ?wait=true")
    def post(self, args, data):
        """Close a month (HQ), as a job: freezes it and writes statements; again is a no-op

        Answers 202 with the job (`Location: /api/v1/jobs/<id>`; its result names the
        settlement). `?wait=true` closes it inside the request and answers 201 with the
        settlement, as before jobs existed. A month not over yet is refused (409) at once.
        """
        session, actor = db_session(), current_actor()
        if args["wait"]:
            closed = settlement.close_for_actor(session, actor=actor, month=data["month"])
            return answer(_SETTLEMENT, closed, 201)
        job, _ = settlement.start_settlement(
            session, actor=actor, month=data["month"], idempotency_key=idempotency_key()
        )
        return accepted(job)


_SETTLEMENT = s.CommissionSettlementSchema()


@blp.route("/commissions/settlements/<settlement_id>")
class SettlementById(MethodView):
    @blp.response(200, s.CommissionSettlementSchema)
    def get(self, settlement_id):
        """One closed month with its totals"""
        return settlement.get_settlement(
            db_session(), actor=current_actor(), settlement_id=settlement_id
        )


@blp.route("/commissions/settlements/<settlement_id>/approve")
class ApproveSettlement(MethodView):
    @blp.response(200, s.CommissionSettlementSchema)
    def post(self, settlement_id):
        """Approve a closed month (HQ): draft -> approved"""
        return settlement.approve(db_session(), actor=current_actor(), settlement_id=settlement_id)


@blp.route("/commissions/settlements/<settlement_id>/statements")
class Statements(MethodView):
    @blp.arguments(s.CommissionStatementArgsSchema, location="query")
    @blp.response(200, s.StatementPageSchema)
    def get(self, args, settlement_id):
        """Statements per guide or per store: earned, clawed back, net"""
        return settlement.statements(
            db_session(), actor=current_actor(), settlement_id=settlement_id, **args
        )


@blp.route("/commissions/settlements/<settlement_id>/export")
class ExportStatements(MethodView):
    @blp.writes_on_get  # each export is audited (commissions.export)
    @blp.arguments(s.CommissionExportArgsSchema, location="query")
    @blp.response(
        200,
        content_type=MIMETYPES["xlsx"],
        description="The statements as an Excel workbook or CSV file",
    )
    def get(self, args, settlement_id):
        """Export statements as .xlsx or .csv, built inside the request (old clients)

        For a big month use `POST .../exports`: the file is built by a job and downloaded
        from it, with no request timeout to race.
        """
        body, name = export_jobs.export_now(
            db_session(),
            actor=current_actor(),
            settlement_id=settlement_id,
            level=args["level"],
            fmt=args["format"],
        )
        fmt = args["format"]
        return Response(
            body,
            mimetype=MIMETYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


@blp.route("/commissions/settlements/<settlement_id>/exports")
class StartExport(MethodView):
    @blp.arguments(s.CommissionExportInSchema)
    @blp.response(202, JobSchema, headers=LOCATION_HEADER)
    def post(self, data, settlement_id):
        """Export statements as a job (HQ): 202 with the job; download its file when done

        The job (`commissions.export`, progress in rows) writes the .xlsx or .csv to the
        file storage; once it has succeeded its result has `download_url`
        (`/api/v1/jobs/<id>/download`), `filename`, `size`, `rows` and `content_type`. The
        same export asked again while one is under way answers that job.
        """
        job, _ = export_jobs.start_export(
            db_session(),
            actor=current_actor(),
            settlement_id=settlement_id,
            level=data["level"],
            fmt=data["format"],
            idempotency_key=idempotency_key(),
        )
        return accepted(job)


@blp.route("/leaderboards")
class Leaderboards(MethodView):
    @blp.arguments(s.LeaderboardArgsSchema, location="query")
    @blp.response(200, s.LeaderboardSchema)
    def get(self, args):
        """Guides ranked by recruits or net earnings in the caller's store or region"""
        return leaderboards.leaderboard(db_session(), actor=current_actor(), **args)
