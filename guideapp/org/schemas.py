"""Request and response shapes for tenants, regions, stores and staff."""

import re

import marshmallow as ma
from marshmallow import fields, validate

from guideapp.extensions import Schema
from guideapp.org.geo import COORD_SYSTEMS
from guideapp.org.hours import WEEKDAYS
from guideapp.org.models import ROLES, STAFF_STATES, STORE_STATES
from guideapp.pagination import CursorArgsSchema, page_schema

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _validate_opening_hours(value: dict) -> None:
    for day, span in value.items():
        if day not in WEEKDAYS:
            raise ma.ValidationError(f"Unknown day {day!r}; use {', '.join(WEEKDAYS)}.")
        if span is None:
            continue  # closed that day
        if (
            not isinstance(span, list)
            or len(span) != 2
            or not all(isinstance(t, str) and _HHMM.match(t) for t in span)
        ):
            raise ma.ValidationError(f'{day}: give ["HH:MM", "HH:MM"] or null when closed.')
        if span[0] >= span[1]:
            raise ma.ValidationError(f"{day}: opening time must be before closing time.")


class TenantSchema(Schema):
    id = fields.String(dump_only=True)
    slug = fields.String()
    name = fields.String()
    timezone = fields.String()
    binding_lock_days = fields.Integer()


class RegionSchema(Schema):
    id = fields.String(dump_only=True)
    brand_id = fields.String()
    code = fields.String()
    name = fields.String()


class StoreSchema(Schema):
    id = fields.String(dump_only=True)
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    region_id = fields.String(required=True)
    brand_id = fields.String(dump_only=True)
    city = fields.String(required=True, validate=validate.Length(min=1, max=60))
    address = fields.String(required=True, validate=validate.Length(min=1, max=300))
    phone = fields.String(allow_none=True, validate=validate.Length(max=40))
    lat = fields.Float(required=True, allow_nan=False, validate=validate.Range(-90, 90))
    lng = fields.Float(required=True, allow_nan=False, validate=validate.Range(-180, 180))
    coord_system = fields.String(
        load_default="gcj02",
        validate=validate.OneOf(COORD_SYSTEMS),
        load_only=True,
        metadata={"description": "System of lat/lng as sent; stores are kept in GCJ-02."},
    )
    service_radius_m = fields.Integer(load_default=5000, validate=validate.Range(50, 100_000))
    state = fields.String(dump_only=True)
    opening_hours = fields.Dict(
        load_default=dict,
        validate=_validate_opening_hours,
        metadata={"example": {"mon": ["10:00", "22:00"], "sun": None}},
    )
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=40)),
        load_default=list,
        validate=validate.Length(max=30),
    )
    wecom_contact_qr_url = fields.Url(allow_none=True, validate=validate.Length(max=500))
    community_qr_url = fields.Url(allow_none=True, validate=validate.Length(max=500))
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class StoreUpdateSchema(StoreSchema):
    """Any subset of the store's fields; managers may send only contact details and hours."""

    class Meta:
        exclude = ("code",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, partial=True, **kwargs)

    coord_system = fields.String(validate=validate.OneOf(COORD_SYSTEMS), load_only=True)
    service_radius_m = fields.Integer(validate=validate.Range(50, 100_000))
    opening_hours = fields.Dict(validate=_validate_opening_hours)
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=40)), validate=validate.Length(max=30)
    )


class StoreQueryArgsSchema(CursorArgsSchema):
    city = fields.String()
    region_id = fields.String()
    state = fields.String(validate=validate.OneOf(STORE_STATES))
    tag = fields.String()


class StaffSchema(Schema):
    id = fields.String(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    phone = fields.String(required=True, metadata={"example": "13800000003"})
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    store_id = fields.String(allow_none=True, load_default=None)
    wecom_userid = fields.String(
        allow_none=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9_.@-]{1,64}$",
            error="A WeCom user id (通讯录 账号): 1-64 letters, digits, _ . @ or -.",
        ),
        metadata={"description": "Their user id in the brand's WeCom corp (null: none)."},
    )
    state = fields.String(dump_only=True)
    left_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    password = fields.String(
        load_only=True,
        required=True,
        validate=validate.Length(min=10, max=128),
        metadata={
            "description": "At least 10 characters and not easy to guess (zxcvbn score 3 of 4: "
            "no common password, name, date or keyboard pattern, not the phone)."
        },
    )


class StaffUpdateSchema(StaffSchema):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, partial=True, **kwargs)


class StaffQueryArgsSchema(CursorArgsSchema):
    store_id = fields.String()
    role = fields.String(validate=validate.OneOf(ROLES))
    state = fields.String(validate=validate.OneOf(STAFF_STATES))


class LeaveSchema(Schema):
    transfer_to = fields.String(
        metadata={
            "description": "A guide who takes over the members, open tasks and future "
            "commissions of the one leaving."
        }
    )


class MeSchema(Schema):
    staff = fields.Nested(StaffSchema)
    store = fields.Nested(StoreSchema, allow_none=True)
    tenant = fields.Nested(TenantSchema)


StorePageSchema = page_schema(StoreSchema, "StorePage")
StaffPageSchema = page_schema(StaffSchema, "StaffPage")
RegionPageSchema = page_schema(RegionSchema, "RegionPage")
