"""Request and response shapes for materials, categories, uploads, shares and stats."""

import marshmallow as ma
from marshmallow import fields, validate

from guideapp.extensions import Schema, UTCDateTime
from guideapp.materials.models import KINDS, LEVELS, SHARE_CHANNELS
from guideapp.pagination import CursorArgsSchema, page_schema


class MaterialTargetSchema(Schema):
    all = fields.Boolean()
    region_ids = fields.List(fields.String(), validate=validate.Length(max=100))
    store_ids = fields.List(fields.String(), validate=validate.Length(max=5000))


class MaterialSchema(Schema):
    id = fields.String(dump_only=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    body = fields.String(load_default="", validate=validate.Length(max=20000))
    url = fields.Url(allow_none=True, validate=validate.Length(max=500))
    cover_url = fields.Url(allow_none=True, validate=validate.Length(max=500))
    upload_id = fields.String(allow_none=True)
    category_id = fields.String(allow_none=True)
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=30)),
        load_default=list,
        validate=validate.Length(max=20),
    )
    level = fields.String(
        validate=validate.OneOf(LEVELS),
        metadata={
            "description": "hq (HQ, targeted), store (a manager's store) or personal (your own)."
        },
    )
    target = fields.Nested(MaterialTargetSchema, load_default=dict)
    valid_from = UTCDateTime(allow_none=True)
    valid_to = UTCDateTime(allow_none=True)
    archived = fields.Boolean(load_default=False)
    owner_store_id = fields.String(dump_only=True, allow_none=True)
    owner_staff_id = fields.String(dump_only=True, allow_none=True)
    version = fields.Integer(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class MaterialUpdateSchema(MaterialSchema):
    class Meta:
        exclude = ("level", "kind")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, partial=True, **kwargs)

    body = fields.String(validate=validate.Length(max=20000))
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=30)), validate=validate.Length(max=20)
    )
    target = fields.Nested(MaterialTargetSchema)
    archived = fields.Boolean()


class MaterialQueryArgsSchema(CursorArgsSchema):
    q = fields.String(validate=validate.Length(min=1, max=50))
    kind = fields.String(validate=validate.OneOf(KINDS))
    category_id = fields.String()
    tag = fields.String()
    include_inactive = fields.Boolean(
        load_default=False,
        metadata={"description": "HQ and managers: also expired, future and archived materials."},
    )


class CategorySchema(Schema):
    id = fields.String(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    parent_id = fields.String(allow_none=True, load_default=None)


class UploadSchema(Schema):
    id = fields.String()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    checksum = fields.String()
    created_at = fields.DateTime()


class UploadFileSchema(ma.Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class ShareSchema(Schema):
    id = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Optional client id: a retried share counts once."},
    )
    material_id = fields.String(dump_only=True)
    channel = fields.String(required=True, validate=validate.OneOf(SHARE_CHANNELS))
    member_id = fields.String(allow_none=True)
    shared_at_client = UTCDateTime(allow_none=True)
    shared_at = fields.DateTime(dump_only=True)
    day = fields.Date(dump_only=True)


class ShareStatsArgsSchema(ma.Schema):
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    group_by = fields.String(
        load_default="material", validate=validate.OneOf(["material", "guide", "store", "day"])
    )
    order_days = fields.Integer(load_default=7, validate=validate.Range(1, 90))
    material_id = fields.String()


class ShareStatsRowSchema(Schema):
    key = fields.String()
    label = fields.String(allow_none=True)
    shares = fields.Integer()
    members = fields.Integer()
    guides = fields.Integer()
    followed_by_orders = fields.Integer()


MaterialPageSchema = page_schema(MaterialSchema, "MaterialPage")
CategoryPageSchema = page_schema(CategorySchema, "MaterialCategoryPage")
