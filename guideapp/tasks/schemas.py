"""Request and response shapes for campaigns, tasks, the inbox, SOP rules and the calendar."""

import re

import marshmallow as ma
from marshmallow import fields, validate

from guideapp.extensions import Schema, UTCDateTime
from guideapp.members.schemas import SegmentSchema
from guideapp.pagination import CursorArgsSchema, page_schema
from guideapp.tasks.models import SOP_TRIGGERS, TARGET_RESULTS, TASK_RESULTS

_when = dict(required=True)


class TargetSchema(Schema):
    all = fields.Boolean()
    region_ids = fields.List(fields.String(), validate=validate.Length(max=100))
    store_tags = fields.List(fields.String(), validate=validate.Length(max=50))
    store_ids = fields.List(fields.String(), validate=validate.Length(max=5000))

    @ma.validates_schema
    def _something(self, data, **kwargs):
        if not any(data.get(k) for k in ("all", "region_ids", "store_tags", "store_ids")):
            raise ma.ValidationError("Name the stores: all, region_ids, store_tags or store_ids.")


class CampaignSchema(Schema):
    id = fields.String(dump_only=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=120))
    brief = fields.String(load_default="", validate=validate.Length(max=5000))
    starts_at = UTCDateTime(**_when)
    due_at = UTCDateTime(**_when)
    suggested_material_id = fields.String(allow_none=True)
    suggested_reply_id = fields.String(allow_none=True)
    target = fields.Nested(TargetSchema, required=True)
    segment = fields.Nested(SegmentSchema, load_default=dict)
    distribution = fields.String(
        load_default="manager",
        validate=validate.OneOf(["manager", "auto"]),
        metadata={
            "description": "manager: one task per store to "
            "assign; auto: one per guide for their members."
        },
    )
    state = fields.String(dump_only=True)
    published_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class FanoutResultSchema(Schema):
    campaign_id = fields.String()
    state = fields.String()
    tasks = fields.Integer()
    targets = fields.Integer()


class TaskSchema(Schema):
    id = fields.String(dump_only=True)
    store_id = fields.String(dump_only=True)
    assignee_id = fields.String(dump_only=True, allow_none=True)
    source = fields.String(dump_only=True)
    campaign_id = fields.String(dump_only=True, allow_none=True)
    sop_rule_id = fields.String(dump_only=True, allow_none=True)
    calendar_item_id = fields.String(dump_only=True, allow_none=True)
    title = fields.String()
    brief = fields.String()
    starts_at = fields.DateTime()
    due_at = fields.DateTime()
    suggested_material_id = fields.String(allow_none=True)
    suggested_reply_id = fields.String(allow_none=True)
    state = fields.String()
    result = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    proof_url = fields.String(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    completed_by = fields.String(allow_none=True)
    updated_at = fields.DateTime()


class StoreTaskSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=120))
    brief = fields.String(load_default="", validate=validate.Length(max=5000))
    starts_at = UTCDateTime(**_when)
    due_at = UTCDateTime(**_when)
    store_id = fields.String(metadata={"description": "HQ only; managers write for their store."})
    assignee_ids = fields.List(
        fields.String(),
        validate=validate.Length(max=100),
        metadata={"description": "Absent: any guide may claim it."},
    )
    member_ids = fields.List(fields.String(), validate=validate.Length(max=500))
    suggested_material_id = fields.String(allow_none=True)
    suggested_reply_id = fields.String(allow_none=True)


class AssignTaskSchema(Schema):
    guide_id = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "null hands the task back to the store."},
    )


class TargetResultSchema(Schema):
    result = fields.String(required=True, validate=validate.OneOf(TARGET_RESULTS))
    note = fields.String(allow_none=True, validate=validate.Length(max=2000))
    done_at = UTCDateTime(
        allow_none=True, metadata={"description": "Phone time: kept as a fact only."}
    )


class TargetOutSchema(Schema):
    task_id = fields.String()
    member_id = fields.String()
    result = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    result_at = fields.DateTime(allow_none=True)


class CompleteSchema(Schema):
    result = fields.String(load_default="done", validate=validate.OneOf(TASK_RESULTS))
    note = fields.String(allow_none=True, validate=validate.Length(max=2000))
    proof_url = fields.Url(allow_none=True, validate=validate.Length(max=500))
    done_at = UTCDateTime(allow_none=True)


class MemberSummarySchema(Schema):
    name = fields.String()
    phone = fields.String(allow_none=True)
    stage = fields.String()
    tier = fields.String()
    birthday = fields.Date(allow_none=True)
    last_order_at = fields.DateTime(allow_none=True)


class EmbeddedTargetSchema(Schema):
    member_id = fields.String()
    result = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    result_at = fields.DateTime(allow_none=True)
    member = fields.Nested(MemberSummarySchema)


class ProgressSchema(Schema):
    targets = fields.Integer()
    answered = fields.Integer()


class SuggestedMaterialSchema(Schema):
    id = fields.String()
    kind = fields.String()
    title = fields.String()
    url = fields.String(allow_none=True)
    cover_url = fields.String(allow_none=True)
    body = fields.String()


class SuggestedReplySchema(Schema):
    id = fields.String()
    scene = fields.String()
    title = fields.String()
    body = fields.String(
        metadata={
            "description": "With placeholders; POST /quick-replies/"
            "{id}/render fills them for a member."
        }
    )


class SuggestedSchema(Schema):
    """null where the task suggests nothing, or nothing the caller may use now."""

    material = fields.Nested(SuggestedMaterialSchema, allow_none=True)
    reply = fields.Nested(SuggestedReplySchema, allow_none=True)


class InboxItemSchema(Schema):
    task = fields.Nested(TaskSchema)
    progress = fields.Nested(ProgressSchema)
    targets = fields.List(fields.Nested(EmbeddedTargetSchema))
    suggested = fields.Nested(SuggestedSchema)


class InboxCountsSchema(Schema):
    today = fields.Integer()
    overdue = fields.Integer()
    upcoming = fields.Integer()
    done = fields.Integer()


class InboxSchema(Schema):
    counts = fields.Nested(InboxCountsSchema)
    items = fields.List(fields.Nested(InboxItemSchema))
    claimable = fields.List(fields.Nested(InboxItemSchema))
    next_cursor = fields.String(allow_none=True)


class InboxArgsSchema(CursorArgsSchema):
    keep_parsed = True  # depends on the query string alone (extensions.ArgumentsParser)

    bucket = fields.String(
        load_default="today", validate=validate.OneOf(["today", "overdue", "upcoming", "done"])
    )


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class SopStepSchema(Schema):
    days = fields.Integer(
        required=True,
        validate=validate.Range(-366, 3650),
        metadata={"description": "Offset from the trigger day (371: 3, 7, 30)."},
    )
    title = fields.String(required=True, validate=validate.Length(min=1, max=120))
    brief = fields.String(load_default="", validate=validate.Length(max=2000))
    due_days = fields.Integer(load_default=1, validate=validate.Range(1, 60))


class SopParamsSchema(Schema):
    silent_days = fields.Integer(
        strict=True,
        validate=validate.Range(1, 3650),
        metadata={"description": "The silent trigger only: days without an order."},
    )
    template_id = fields.String(
        validate=validate.Length(min=1, max=32),
        metadata={"description": "The coupon_expiring trigger only: coupons of this template."},
    )


class SopRuleSchema(Schema):
    id = fields.String(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    trigger = fields.String(required=True, validate=validate.OneOf(SOP_TRIGGERS))
    params = fields.Nested(
        SopParamsSchema, load_default=dict, metadata={"example": {"silent_days": 60}}
    )
    steps = fields.List(
        fields.Nested(SopStepSchema), required=True, validate=validate.Length(min=1, max=20)
    )
    window_start = fields.String(load_default="10:00", validate=validate.Regexp(_HHMM))
    window_end = fields.String(load_default="21:00", validate=validate.Regexp(_HHMM))
    suggested_material_id = fields.String(allow_none=True)
    suggested_reply_id = fields.String(allow_none=True)
    active = fields.Boolean(load_default=True)

    @ma.validates_schema
    def _window(self, data, **kwargs):
        if data.get("window_start", "10:00") >= data.get("window_end", "21:00"):
            raise ma.ValidationError("window_start must be before window_end.", "window_end")
        silent_days = (data.get("params") or {}).get("silent_days")
        if data.get("trigger") == "silent" and silent_days is None:
            raise ma.ValidationError("Give params.silent_days (an integer).", "params")
        if data.get("trigger") != "silent" and silent_days is not None:
            raise ma.ValidationError("silent_days is for the silent trigger only.", "params")
        template_id = (data.get("params") or {}).get("template_id")
        if data.get("trigger") != "coupon_expiring" and template_id is not None:
            raise ma.ValidationError(
                "template_id is for the coupon_expiring trigger only.", "params"
            )


class CalendarItemSchema(Schema):
    id = fields.String(dump_only=True)
    day = fields.Date(required=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=120))
    brief = fields.String(load_default="", validate=validate.Length(max=5000))
    material_id = fields.String(allow_none=True)
    reply_id = fields.String(allow_none=True)
    coupon = fields.String(allow_none=True, validate=validate.Length(max=120))
    community_groups = fields.String(allow_none=True, validate=validate.Length(max=200))
    target = fields.Nested(TargetSchema, required=True)


class CalendarArgsSchema(CursorArgsSchema):
    start = fields.Date(required=True)
    end = fields.Date(required=True)


CampaignPageSchema = page_schema(CampaignSchema, "CampaignPage")
SopRulePageSchema = page_schema(SopRuleSchema, "SopRulePage")
CalendarPageSchema = page_schema(CalendarItemSchema, "CalendarPage")
TaskPageSchema = page_schema(TaskSchema, "TaskPage")
