"""Request and response shapes for quick replies, their categories, renders and imports."""

from marshmallow import fields, validate

from guideapp.extensions import Schema
from guideapp.pagination import CursorArgsSchema, page_schema
from guideapp.replies import render
from guideapp.replies.models import LEVELS, SCENES

_PLACEHOLDERS = ", ".join("{" + name + "}" for name in render.FIELDS)
BODY_HELP = (
    f"Text with placeholders: {_PLACEHOLDERS}. Write {{{{ and }}}} for literal braces. "
    "No conversions (!r) or format specs (:...). A value the member lacks (no last "
    "order, no birthday) renders as empty text."
)


class ReplyCategorySchema(Schema):
    id = fields.String(dump_only=True)
    store_id = fields.String(
        dump_only=True, allow_none=True, metadata={"description": "null: an HQ category."}
    )
    scene = fields.String(required=True, validate=validate.OneOf(SCENES))
    name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    position = fields.Integer(load_default=0, validate=validate.Range(0, 10000))
    updated_at = fields.DateTime(dump_only=True)


class ReplyCategoryArgsSchema(CursorArgsSchema):
    scene = fields.String(validate=validate.OneOf(SCENES))


class QuickReplySchema(Schema):
    id = fields.String(dump_only=True)
    level = fields.String(
        validate=validate.OneOf(LEVELS),
        metadata={
            "description": "hq (HQ only), store (a manager's store), personal (the caller's own). "
            "Default by role: HQ hq, manager store, guide personal."
        },
    )
    owner_store_id = fields.String(dump_only=True, allow_none=True)
    owner_staff_id = fields.String(dump_only=True, allow_none=True)
    scene = fields.String(
        validate=validate.OneOf(SCENES),
        metadata={"description": "Required unless a category gives it."},
    )
    category_id = fields.String(allow_none=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=120))
    body = fields.String(
        required=True,
        validate=validate.Length(min=1, max=5000),
        metadata={"description": BODY_HELP},
    )
    tag_ids = fields.List(
        fields.String(),
        load_default=list,
        validate=validate.Length(max=50),
        metadata={"description": "Member tags the reply is for; empty: all."},
    )
    placeholders = fields.Method("_placeholders", dump_only=True)
    usage_count = fields.Integer(dump_only=True)
    version = fields.Integer(dump_only=True)
    created_by = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)

    def _placeholders(self, reply) -> list[str]:
        try:
            return render.parse(reply.body).fields
        except render.TemplateError:
            return []


class QuickReplyPatchSchema(Schema):
    """Only the fields given change; send the ETag of the version you edited as If-Match."""

    level = fields.String(validate=validate.OneOf(LEVELS))
    scene = fields.String(validate=validate.OneOf(SCENES))
    category_id = fields.String(allow_none=True)
    title = fields.String(validate=validate.Length(min=1, max=120))
    body = fields.String(
        validate=validate.Length(min=1, max=5000), metadata={"description": BODY_HELP}
    )
    tag_ids = fields.List(fields.String(), validate=validate.Length(max=50))


class QuickReplyEtagSchema(Schema):
    """What a reply's ETag covers: its content, never its usage count."""

    id = fields.String()
    version = fields.Integer()
    level = fields.String()
    owner_store_id = fields.String(allow_none=True)
    owner_staff_id = fields.String(allow_none=True)
    scene = fields.String()
    category_id = fields.String(allow_none=True)
    title = fields.String()
    body = fields.String()
    tag_ids = fields.List(fields.String())


class ReplyListArgsSchema(CursorArgsSchema):
    scene = fields.String(validate=validate.OneOf(SCENES))
    level = fields.String(validate=validate.OneOf(LEVELS))
    category_id = fields.String()
    tag_id = fields.String(metadata={"description": "Replies for this member tag."})
    member_id = fields.String(
        metadata={
            "description": "Replies for this member: tagged with one of their tags, or untagged."
        }
    )
    q = fields.String(
        validate=validate.Length(min=1, max=60), metadata={"description": "Part of the title."}
    )


class RenderRequestSchema(Schema):
    member_id = fields.String(required=True)


class PlaceholderValueSchema(Schema):
    name = fields.String()
    value = fields.String()
    missing = fields.Boolean(metadata={"description": "The member has no such value: empty."})


class RenderedReplySchema(Schema):
    reply_id = fields.String()
    member_id = fields.String()
    text = fields.String()
    placeholders = fields.List(fields.Nested(PlaceholderValueSchema))


class ReplyImportArgsSchema(Schema):
    dry_run = fields.Boolean(
        load_default=False, metadata={"description": "Check every row, write nothing."}
    )


class ReplyImportFileSchema(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class ReplyImportErrorSchema(Schema):
    row = fields.Integer()
    field = fields.String()
    message = fields.String()


class ReplyImportReportSchema(Schema):
    dry_run = fields.Boolean()
    rows = fields.Integer()
    imported = fields.Integer()
    updated = fields.Integer()
    failed = fields.Integer()
    categories_created = fields.Integer()
    errors = fields.List(fields.Nested(ReplyImportErrorSchema))


QuickReplyPageSchema = page_schema(QuickReplySchema, "QuickReplyPage")
ReplyCategoryPageSchema = page_schema(ReplyCategorySchema, "ReplyCategoryPage")
