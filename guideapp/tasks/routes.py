"""Inbox, tasks, campaigns, SOP rules, the marketing calendar and dashboards."""

import marshmallow as ma
from flask import current_app
from flask.views import MethodView

from guideapp.extensions import Blueprint
from guideapp.jobs.http import LOCATION_HEADER, accepted, answer, idempotency_key
from guideapp.jobs.schemas import JobSchema, WaitArgsSchema
from guideapp.pagination import CursorArgsSchema
from guideapp.tasks import dashboard, inbox, plans, service
from guideapp.tasks import schemas as s
from guideapp.http import conditional_json, current_actor, db_session, extension, json_bytes

blp = Blueprint("tasks", __name__, url_prefix="/api/v1", description="Tasks and campaigns")


@blp.route("/inbox")
class Inbox(MethodView):
    @blp.versioned_read
    @blp.arguments(s.InboxArgsSchema, location="query")
    @blp.response(200, s.InboxSchema, headers={"ETag": {"schema": {"type": "string"}}})
    @blp.alt_response(304, description="Unchanged since the ETag sent in If-None-Match")
    def get(self, args):
        """My inbox by bucket, with counts, targets' member summaries and suggested content

        Send the last ETag back in If-None-Match: an unchanged inbox answers 304, no body.
        """
        page = inbox.cached_inbox(
            db_session,
            actor=current_actor(),
            **args,
            cache=extension("inbox_cache"),
            render=_render_inbox,
        )
        return conditional_json(page.body, page.etag)


_INBOX_SCHEMA = s.InboxSchema()


def _render_inbox(data: dict) -> bytes:
    return json_bytes(_INBOX_SCHEMA.dump(data))


@blp.route("/tasks")
class Tasks(MethodView):
    @blp.arguments(s.StoreTaskSchema)
    @blp.response(201, s.TaskSchema(many=True))
    def post(self, data):
        """Write a store task (manager): for named guides, or claimable by any guide"""
        return service.create_store_task(db_session(), actor=current_actor(), data=data)


@blp.route("/tasks/<task_id>")
class TaskById(MethodView):
    @blp.response(200, s.InboxItemSchema)
    def get(self, task_id):
        """One task with its targets"""
        actor = current_actor()
        task = service.get_task(db_session(), actor=actor, task_id=task_id)
        return inbox.embed(db_session(), actor, [task])[0]


@blp.route("/tasks/<task_id>/assign")
class AssignTask(MethodView):
    @blp.arguments(s.AssignTaskSchema)
    @blp.response(200, s.TaskSchema)
    def post(self, data, task_id):
        """Assign to a guide (manager), or claim a store task (guide: their own id)"""
        return service.assign(
            db_session(), actor=current_actor(), task_id=task_id, guide_id=data["guide_id"]
        )


@blp.route("/tasks/<task_id>/targets/<member_id>/result")
class TargetResult(MethodView):
    @blp.arguments(s.TargetResultSchema)
    @blp.response(200, s.TargetOutSchema)
    def post(self, data, task_id, member_id):
        """Record what happened with one member of the task"""
        return service.record_result(
            db_session(),
            actor=current_actor(),
            task_id=task_id,
            member_id=member_id,
            result=data["result"],
            note=data.get("note"),
            done_at=data.get("done_at"),
        )


@blp.route("/tasks/<task_id>/complete")
class CompleteTask(MethodView):
    @blp.arguments(s.CompleteSchema)
    @blp.response(200, s.TaskSchema)
    def post(self, data, task_id):
        """Complete a task with a result, a note and optionally proof"""
        return service.complete(
            db_session(),
            actor=current_actor(),
            task_id=task_id,
            result=data["result"],
            note=data.get("note"),
            proof_url=data.get("proof_url"),
            done_at=data.get("done_at"),
        )


@blp.route("/tasks/<task_id>/cancel")
class CancelTask(MethodView):
    @blp.response(200, s.TaskSchema)
    def post(self, task_id):
        """Cancel a task (manager, HQ); phones drop it at the next sync"""
        return service.cancel(db_session(), actor=current_actor(), task_id=task_id)


@blp.route("/campaigns")
class Campaigns(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, s.CampaignPageSchema)
    def get(self, args):
        """HQ's campaigns"""
        return service.list_campaigns(db_session(), actor=current_actor(), **args)

    @blp.arguments(s.CampaignSchema)
    @blp.response(201, s.CampaignSchema)
    def post(self, data):
        """Plan a campaign (HQ): window, content, target stores, member segment"""
        return service.create_campaign(db_session(), actor=current_actor(), data=data)


@blp.route("/campaigns/<campaign_id>")
class CampaignById(MethodView):
    @blp.response(200, s.CampaignSchema)
    def get(self, campaign_id):
        """One campaign"""
        return service.get_campaign(db_session(), actor=current_actor(), campaign_id=campaign_id)


@blp.route("/campaigns/<campaign_id>/publish")
class PublishCampaign(MethodView):
    @blp.arguments(WaitArgsSchema, location="query")
    @blp.response(202, JobSchema, headers=LOCATION_HEADER)
    @blp.alt_response(200, schema=s.FanoutResultSchema, description="With ?wait=true")
    def post(self, args, campaign_id):
        """Publish: fan the campaign out to the target stores' inboxes (a job)

        Answers 202 with the job at once (`Location: /api/v1/jobs/<id>`: follow its progress
        in stores). `?wait=true` publishes inside the request and answers 200 with the
        counts, as before jobs existed.
        """
        session, actor = db_session(), current_actor()
        if args["wait"]:
            result = service.publish(session, actor=actor, campaign_id=campaign_id)
            return answer(_FANOUT, result, 200)
        job, _ = service.start_publish(
            session,
            actor=actor,
            campaign_id=campaign_id,
            idempotency_key=idempotency_key(),
            batch_stores=current_app.config["PUBLISH_BATCH_STORES"],
        )
        return accepted(job)


_FANOUT = s.FanoutResultSchema()


@blp.route("/campaigns/<campaign_id>/cancel")
class CancelCampaign(MethodView):
    @blp.response(200, s.FanoutResultSchema)
    def post(self, campaign_id):
        """Cancel: open tasks leave the inboxes (and the phones at their next sync)"""
        return service.cancel_campaign(db_session(), actor=current_actor(), campaign_id=campaign_id)


@blp.route("/sop-rules")
class SopRules(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, s.SopRulePageSchema)
    def get(self, args):
        """SOP rules"""
        return plans.list_rules(db_session(), actor=current_actor(), **args)

    @blp.arguments(s.SopRuleSchema)
    @blp.response(201, s.SopRuleSchema)
    def post(self, data):
        """Create an SOP rule (HQ), e.g. 371: member_joined with steps on day 3, 7, 30"""
        return plans.create_rule(db_session(), actor=current_actor(), data=data)


class ActiveSchema(ma.Schema):
    active = ma.fields.Boolean(required=True)


@blp.route("/sop-rules/<rule_id>/active")
class SopRuleActive(MethodView):
    @blp.arguments(ActiveSchema)
    @blp.response(200, s.SopRuleSchema)
    def post(self, data, rule_id):
        """Switch an SOP rule on or off"""
        return plans.set_rule_active(
            db_session(), actor=current_actor(), rule_id=rule_id, active=data["active"]
        )


@blp.route("/calendar")
class Calendar(MethodView):
    @blp.arguments(s.CalendarArgsSchema, location="query")
    @blp.response(200, s.CalendarPageSchema)
    def get(self, args):
        """The marketing calendar for a date range"""
        return plans.calendar(db_session(), actor=current_actor(), **args)

    @blp.arguments(s.CalendarItemSchema)
    @blp.response(201, s.CalendarItemSchema)
    def post(self, data):
        """Plan a day's content for target stores (HQ); it reaches their inboxes that day"""
        return plans.plan_day(db_session(), actor=current_actor(), data=data)


class DashboardArgsSchema(ma.Schema):
    group_by = ma.fields.String(
        load_default="store", validate=ma.validate.OneOf(dashboard.GROUPINGS)
    )
    campaign_id = ma.fields.String()
    conversion_days = ma.fields.Integer(load_default=7, validate=ma.validate.Range(1, 90))


class DashboardRowSchema(ma.Schema):
    key = ma.fields.String(allow_none=True)
    label = ma.fields.String(allow_none=True)
    tasks = ma.fields.Integer()
    done = ma.fields.Integer()
    overdue = ma.fields.Integer()
    completion_rate = ma.fields.Float()
    targets = ma.fields.Integer()
    answered = ma.fields.Integer()
    converted = ma.fields.Integer()
    conversion_rate = ma.fields.Float()


@blp.route("/dashboards/tasks")
class TaskDashboard(MethodView):
    @blp.arguments(DashboardArgsSchema, location="query")
    @blp.response(200, DashboardRowSchema(many=True))
    def get(self, args):
        """Completion, overdue and conversion per campaign, region, store or guide"""
        return dashboard.task_dashboard(db_session(), actor=current_actor(), **args)
