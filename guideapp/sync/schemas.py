"""Query and body shapes of the WatermelonDB sync endpoints."""

import marshmallow as ma
from marshmallow import fields, validate

from guideapp import untrusted
from guideapp.extensions import Schema
from guideapp.pagination import page_schema
from guideapp.sync.tables import SCHEMA_VERSION


class Cursor(fields.Field):
    """WatermelonDB sends null (first sync) as the text 'null'; older versions send 0."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value in (None, "", "null", "undefined", "0", 0):
            return None
        try:
            cursor = int(value)
        except (TypeError, ValueError) as exc:
            raise ma.ValidationError("A timestamp this server returned, or null.") from exc
        if cursor < 0:
            raise ma.ValidationError("A timestamp this server returned, or null.")
        return cursor


class MigrationField(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if value in (None, "", "null", "undefined"):
            return None
        try:
            parsed = untrusted.loads(value, max_depth=4) if isinstance(value, str) else value
        except ValueError as exc:
            raise ma.ValidationError("JSON: {from, tables, columns}.") from exc
        if parsed is not None and not _migration_shape(parsed):
            raise ma.ValidationError("JSON: {from, tables: [name], columns: [{table, ...}]}.")
        return parsed


def _migration_shape(parsed) -> bool:
    """{tables: [names], columns: [{table: name, ...}]}: what the pull reads of it."""
    if not isinstance(parsed, dict):
        return False
    tables, columns = parsed.get("tables") or [], parsed.get("columns") or []
    return (
        isinstance(tables, list)
        and all(isinstance(t, str) for t in tables)
        and isinstance(columns, list)
        and all(
            not isinstance(c, dict) or isinstance(c.get("table"), (str, type(None)))
            for c in columns
        )
    )


class PullArgsSchema(ma.Schema):
    last_pulled_at = Cursor(load_default=None, metadata={"type": "integer", "nullable": True})
    schema_version = fields.Integer(
        load_default=1,
        validate=validate.Range(
            min=1,
            max=SCHEMA_VERSION,
            error=f"A schema version this server knows: 1-{SCHEMA_VERSION}.",
        ),
        metadata={"description": "1: tasks, members; 2: + materials, replies; 3: + coupons."},
    )
    migration = MigrationField(load_default=None, metadata={"type": "string"})
    page = fields.String(
        load_default=None,
        metadata={"description": "next_page of the previous response while a full sync is paged."},
    )


class PushArgsSchema(ma.Schema):
    last_pulled_at = fields.Integer(required=True, validate=validate.Range(min=1))


class PushBodySchema(Schema):
    changes = fields.Dict(
        required=True,
        metadata={
            "description": "WatermelonDB changes: {table: {created: [], updated: [], deleted: []}}"
        },
    )


class PullResponseSchema(Schema):
    changes = fields.Dict()
    timestamp = fields.Integer()
    next_page = fields.String(allow_none=True)
    experimentalStrategy = fields.String()


class PushResponseSchema(Schema):
    experimentalRejectedIds = fields.Dict()
    rejected = fields.Dict()


class RejectionSchema(Schema):
    id = fields.Integer()
    staff_id = fields.String()
    table_name = fields.String()
    record_id = fields.String()
    operation = fields.String()
    reason = fields.String()
    server_won = fields.Boolean()
    payload = fields.Dict()
    created_at = fields.DateTime()


RejectionPageSchema = page_schema(RejectionSchema, "SyncRejectionPage")
