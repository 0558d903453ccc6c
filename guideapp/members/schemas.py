"""Request and response shapes for members, cards, tags, notes, orders and imports."""

from marshmallow import fields, validate

from guideapp.extensions import Schema, SerializedSize, UTCDateTime
from guideapp.members.models import CHANNELS, GENDERS, POINT_KINDS, STAGES, TIERS
from guideapp.pagination import CursorArgsSchema, page_schema

_id = fields.String


class MemberSchema(Schema):
    id = _id(dump_only=True)
    name = fields.String()
    phone = fields.String(
        allow_none=True,
        metadata={"description": "Masked (138****1234) unless it is yours; null if unknown."},
    )
    unionid = fields.String(allow_none=True)
    gender = fields.String()
    birthday = fields.Date(allow_none=True)
    tier = fields.String()
    stage = fields.String()
    source_channel = fields.String()
    joined_at = fields.DateTime()
    guide_id = _id(allow_none=True)
    store_id = _id(allow_none=True)
    bound_at = fields.DateTime(allow_none=True)
    binding_locked_until = fields.DateTime(allow_none=True)
    last_order_at = fields.DateTime(allow_none=True)
    last_contact_at = fields.DateTime(allow_none=True)
    state = fields.String()
    merged_into_id = _id(allow_none=True)
    updated_at = fields.DateTime()


# Members matched by every criterion given (tags: any of them): members.segments.
class SegmentSchema(Schema):
    tag_ids = fields.List(fields.String(), validate=validate.Length(max=50))
    stages = fields.List(fields.String(validate=validate.OneOf(STAGES)))
    tiers = fields.List(fields.String(validate=validate.OneOf(TIERS)))
    birthday_month = fields.Integer(validate=validate.Range(1, 12))
    silent_days = fields.Integer(validate=validate.Range(1, 3650))


class MemberSearchArgsSchema(CursorArgsSchema):
    q = fields.String(
        validate=validate.Length(min=1, max=30),
        metadata={"description": "Part of the member's name."},
    )
    phone_tail = fields.String(validate=validate.Regexp(r"^\d{4}$"))
    tag_id = _id()
    stage = fields.String(validate=validate.OneOf(STAGES))
    birthday_month = fields.Integer(validate=validate.Range(1, 12))
    birthday_this_month = fields.Boolean(
        load_default=False, metadata={"description": "In the tenant's time zone."}
    )
    silent_days = fields.Integer(
        validate=validate.Range(1, 3650),
        metadata={"description": "No order nor contact for N days."},
    )
    guide_id = _id()
    store_id = _id()


class MemberRegisterSchema(Schema):
    phone = fields.String(required=True)
    name = fields.String(load_default="", validate=validate.Length(max=60))
    unionid = fields.String(validate=validate.Length(max=64))
    gender = fields.String(load_default="unknown", validate=validate.OneOf(GENDERS))
    birthday = fields.Date(allow_none=True)
    guide_id = _id(metadata={"description": "Managers and HQ: the guide to bind to."})


class OrderSchema(Schema):
    id = _id(dump_only=True)
    member_id = _id(dump_only=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    order_no = fields.String(required=True, validate=validate.Length(min=1, max=64))
    amount_fen = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=0, max=10**12)
    )
    refunded_fen = fields.Integer(dump_only=True)
    coupon_discount_fen = fields.Integer(
        dump_only=True,
        metadata={"description": "What coupons took off; amount_fen is what was paid."},
    )
    items = fields.List(
        fields.Dict(keys=fields.String()),
        load_default=list,
        validate=[validate.Length(max=500), SerializedSize(64 * 1024)],
        metadata={"description": "Free JSON per line, at most 500 lines and 64 KiB."},
    )
    ordered_at = UTCDateTime(required=True)
    store_id = _id(dump_only=True, allow_none=True)
    guide_id = _id(dump_only=True, allow_none=True)


class OrderInSchema(OrderSchema):
    phone = fields.String(load_only=True)
    unionid = fields.String(load_only=True, validate=validate.Length(max=64))
    channel_customer_id = fields.String(load_only=True, validate=validate.Length(max=100))
    buyer_name = fields.String(load_only=True, validate=validate.Length(max=60))
    store_code = fields.String(load_only=True)


class OrderResultSchema(Schema):
    order = fields.Nested(OrderSchema)
    created = fields.Boolean()


class RefundInSchema(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    order_no = fields.String(required=True)
    refund_no = fields.String(required=True, validate=validate.Length(min=1, max=64))
    amount_fen = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=10**12)
    )
    refunded_at = UTCDateTime(default_timezone=None)


class RefundResultSchema(Schema):
    id = _id()
    order_id = _id()
    refund_no = fields.String()
    amount_fen = fields.Integer()
    created = fields.Boolean()


class NoteSchema(Schema):
    id = _id(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Optional client id (offline-created notes)."},
    )
    member_id = _id(dump_only=True)
    author_id = _id(dump_only=True)
    body = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    noted_at = UTCDateTime(
        allow_none=True, metadata={"description": "When the guide wrote it (phone)."}
    )
    created_at = fields.DateTime(dump_only=True)


class TagRefSchema(Schema):
    id = _id()
    name = fields.String()
    source = fields.String()


class TagGroupOnCardSchema(Schema):
    group_id = _id()
    group = fields.String()
    tags = fields.List(fields.Nested(TagRefSchema))


class TagMemberSchema(Schema):
    tag_ids = fields.List(_id(), required=True, validate=validate.Length(min=1, max=50))


class QuestionnaireSchema(Schema):
    questionnaire = fields.String(required=True, validate=validate.Length(min=1, max=60))
    answers = fields.Dict(
        keys=fields.String(validate=validate.Length(max=200)),
        values=fields.String(validate=validate.Length(max=500)),
        required=True,
        validate=validate.Length(min=1, max=100),
    )


class CareDateSchema(Schema):
    kind = fields.String()
    date = fields.Date()


class NamedRefSchema(Schema):
    id = _id()
    name = fields.String()
    code = fields.String()


class CardSchema(Schema):
    member = fields.Nested(MemberSchema)
    points_balance = fields.Integer()
    orders = fields.Integer()
    total_spend_fen = fields.Integer()
    tags = fields.List(fields.Nested(TagGroupOnCardSchema))
    recent_orders = fields.List(fields.Nested(OrderSchema))
    bound_guide = fields.Nested(NamedRefSchema, allow_none=True)
    bound_store = fields.Nested(NamedRefSchema, allow_none=True)
    notes = fields.List(fields.Nested(NoteSchema))
    care_dates = fields.List(fields.Nested(CareDateSchema))
    open_tasks = fields.List(fields.Dict())
    coupons = fields.List(
        fields.Dict(),
        metadata={"description": "Available coupons, soonest to expire first (at most 20)."},
    )
    coupon_counts = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "By status."}
    )


class AssignSchema(Schema):
    guide_id = _id(required=True)


class TransferSchema(Schema):
    from_guide_id = _id(required=True)
    to_guide_id = _id(required=True)
    member_ids = fields.List(
        _id(),
        validate=validate.Length(min=1, max=100_000),
        metadata={"description": "Absent: all of the guide's members."},
    )


class TransferResultSchema(Schema):
    transfer_id = _id(allow_none=True)
    moved = fields.Integer()


class MergeSchema(Schema):
    merged_id = _id(required=True, metadata={"description": "The duplicate to fold in."})


class MergeResultSchema(Schema):
    survivor_id = _id()
    merged_id = _id()
    moved = fields.Dict(keys=fields.String(), values=fields.Integer())


class PointsSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(POINT_KINDS))
    points = fields.Integer(required=True, strict=True, validate=validate.Range(-(10**9), 10**9))
    reason = fields.String(load_default="", validate=validate.Length(max=200))


class PointsResultSchema(Schema):
    member_id = _id()
    points_balance = fields.Integer()


class TagGroupSchema(Schema):
    id = _id(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    store_id = _id(dump_only=True, allow_none=True)
    store_level = fields.Boolean(load_only=True, load_default=False)


class TagSchema(Schema):
    id = _id(dump_only=True)
    group_id = _id(dump_only=True)
    store_id = _id(dump_only=True, allow_none=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    code = fields.String(allow_none=True, validate=validate.Length(max=20))


class QuestionnaireCodeSchema(Schema):
    id = _id(dump_only=True)
    questionnaire = fields.String(required=True, validate=validate.Length(min=1, max=60))
    question = fields.String(required=True, validate=validate.Length(min=1, max=60))
    answer = fields.String(required=True, validate=validate.Length(min=1, max=60))
    tag_id = _id(required=True)


class LifecycleRulesSchema(Schema):
    regular_min_orders = fields.Integer(
        validate=validate.Range(1, 1000),
        metadata={"description": "Paid orders within the window that make a member 'regular'."},
    )
    regular_window_days = fields.Integer(validate=validate.Range(1, 3650))


class ImportErrorSchema(Schema):
    row = fields.Integer(metadata={"description": "1-based row number in the file, header = 1."})
    field = fields.String(allow_none=True)
    message = fields.String()


class ImportNoteSchema(Schema):
    row = fields.Integer(metadata={"description": "1-based row number in the file, header = 1."})
    field = fields.String(allow_none=True, metadata={"description": "null: the whole row."})
    message = fields.String()


class ImportReportSchema(Schema):
    kind = fields.String()
    dry_run = fields.Boolean()
    mode = fields.String(metadata={"description": "fill or overwrite"})
    rows = fields.Integer(metadata={"description": "imported + updated + unchanged + failed"})
    imported = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer(metadata={"description": "Rows that changed nothing; see notes."})
    failed = fields.Integer(metadata={"description": "Rows refused; see errors."})
    errors = fields.List(fields.Nested(ImportErrorSchema))
    notes = fields.List(
        fields.Nested(ImportNoteSchema),
        metadata={"description": "Why a row changed nothing, or which of its values were kept."},
    )
    errors_total = fields.Integer(
        metadata={"description": "All errors found; `errors` lists the first 1,000."}
    )
    notes_total = fields.Integer(
        metadata={"description": "All notes written; `notes` lists the first 1,000."}
    )


MemberPageSchema = page_schema(MemberSchema, "MemberPage")
TagGroupPageSchema = page_schema(TagGroupSchema, "TagGroupPage")
TagPageSchema = page_schema(TagSchema, "TagPage")
