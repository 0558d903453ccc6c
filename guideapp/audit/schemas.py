"""The audit log's shapes."""

from marshmallow import fields, validate

from guideapp.audit.models import ACTIONS
from guideapp.extensions import Schema
from guideapp.pagination import CursorArgsSchema, page_schema


class AuditEntrySchema(Schema):
    id = fields.String()
    staff_id = fields.String(allow_none=True, metadata={"description": "null: the CLI or a job."})
    action = fields.String(validate=validate.OneOf(ACTIONS))
    target_kind = fields.String(allow_none=True)
    target_id = fields.String(allow_none=True)
    details = fields.Dict()
    at = fields.DateTime()


AuditPageSchema = page_schema(AuditEntrySchema, "AuditPage")


class AuditArgsSchema(CursorArgsSchema):
    action = fields.String(validate=validate.OneOf(ACTIONS))
    staff_id = fields.String(validate=validate.Length(min=1, max=32))
