"""Request and response shapes for channel codes, the public scan and scan statistics."""

from typing import Any

from marshmallow import fields, validate, validates_schema, ValidationError
from webargs.fields import DelimitedList

from guideapp.extensions import Schema, UTCDateTime
from guideapp.org.geo import COORD_SYSTEMS
from guideapp.pagination import CursorArgsSchema, page_schema
from guideapp.scans.models import CHANNELS, CODE_KINDS, RESOLUTIONS
from guideapp.scans.stats import DIMENSIONS

_url: dict[str, Any] = dict(
    validate=validate.And(validate.Length(max=500), validate.URL()), allow_none=True
)


class CodeUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(max=120))
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    tag_ids = fields.List(
        fields.String(),
        validate=validate.Length(max=20),
        metadata={"description": "Tags written onto members who scan it."},
    )
    valid_from = UTCDateTime(allow_none=True)
    valid_until = UTCDateTime(allow_none=True)
    fallback_store_id = fields.String(
        allow_none=True,
        metadata={"description": "Where scans with no store in range go (an open store)."},
    )
    fallback_url = fields.String(**_url, metadata={"description": "Else, this page."})
    coupon_template_id = fields.String(
        allow_none=True,
        validate=validate.Length(min=1, max=32),
        metadata={
            "description": "Members WeChat identifies scanning it get one coupon of this "
            "template (an HQ one, or the code's store's); null: none."
        },
    )
    active = fields.Boolean(metadata={"description": "false switches the code off."})


class CodeSchema(CodeUpdateSchema):
    id = fields.String(dump_only=True)
    code = fields.String(dump_only=True, metadata={"description": "The public short code."})
    url = fields.String(dump_only=True, metadata={"description": "What the QR code holds."})
    kind = fields.String(required=True, validate=validate.OneOf(CODE_KINDS))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    store_id = fields.String(allow_none=True, metadata={"description": "Store codes."})
    guide_id = fields.String(allow_none=True, metadata={"description": "Guide codes."})
    created_by = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


CodePageSchema = page_schema(CodeSchema, "CodePage")


class CodeQueryArgsSchema(CursorArgsSchema):
    kind = fields.String(validate=validate.OneOf(CODE_KINDS))
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    store_id = fields.String()
    active = fields.Boolean()


class ScanRequestSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=40))
    lat = fields.Float(
        allow_nan=False,
        validate=validate.Range(-90, 90),
        metadata={"description": "Latitude; send lat and lng or neither."},
    )
    lng = fields.Float(allow_nan=False, validate=validate.Range(-180, 180))
    coord_system = fields.String(
        load_default="wgs84",
        validate=validate.OneOf(COORD_SYSTEMS),
        metadata={"description": "wgs84 (wx.getLocation's default) or gcj02."},
    )
    # Who scanned is only ever what WeChat vouches for (docs/wechat.md): codes the backend
    # exchanges once. A scan without them is anonymous: routed and counted, nobody bound.
    oauth_code = fields.String(
        validate=validate.Length(min=1, max=128),
        metadata={"description": "H5 inside WeChat: the snsapi_base OAuth code (-> openid)."},
    )
    login_code = fields.String(
        validate=validate.Length(min=1, max=128),
        metadata={"description": "Mini-program: a wx.login code (code2Session -> openid)."},
    )
    phone_code = fields.String(
        validate=validate.Length(min=1, max=128),
        metadata={"description": "Mini-program: a getPhoneNumber code (-> verified phone)."},
    )
    lead_phone = fields.String(
        validate=validate.Length(min=1, max=20),
        metadata={
            "description": "A phone the consumer typed: kept on the scan as an unverified "
            "lead for the guide; identifies nobody. Refused beside an identity code."
        },
    )

    @validates_schema
    def _both_or_neither(self, data, **kwargs):
        if ("lat" in data) != ("lng" in data):
            raise ValidationError("Send both lat and lng, or neither.", "lat")
        if "oauth_code" in data and "login_code" in data:
            raise ValidationError(
                "Send one identity code: oauth_code (H5) or login_code (mini-program).",
                "login_code",
            )
        if "lead_phone" in data and data.keys() & {"oauth_code", "login_code", "phone_code"}:
            raise ValidationError(
                "An identified scan takes its phone from phone_code, not a typed one.",
                "lead_phone",
            )


class NextOpeningSchema(Schema):
    weekday = fields.String(metadata={"description": "mon ... sun, in the tenant's zone."})
    time = fields.String(metadata={"example": "10:00"})
    in_days = fields.Integer(metadata={"description": "0 today, 1 tomorrow, ..."})


class ScanStoreSchema(Schema):
    id = fields.String()
    name = fields.String()
    address = fields.String()
    phone = fields.String(allow_none=True, metadata={"description": "For tap-to-call."})
    distance_m = fields.Float(allow_none=True)
    opening_hours = fields.Dict(
        metadata={
            "description": "Per weekday [opens, closes], null when closed; a day left out "
            "is unknown.",
            "example": {"mon": ["10:00", "22:00"], "sun": None},
        }
    )
    hours_today = fields.List(
        fields.String(),
        allow_none=True,
        metadata={
            "description": "Today's [opens, closes] in the tenant's zone; null: closed or unknown."
        },
    )
    open_now = fields.Boolean(
        allow_none=True,
        metadata={"description": "Open at this moment (tenant's zone); null: hours unknown."},
    )
    next_opening = fields.Nested(
        NextOpeningSchema,
        allow_none=True,
        metadata={"description": "When it next opens, within a week (null: not known)."},
    )


class ScanGuideSchema(Schema):
    id = fields.String()
    name = fields.String()


class ScanCouponSchema(Schema):
    id = fields.String()
    name = fields.String()
    kind = fields.String()
    valid_to = fields.DateTime()
    new = fields.Boolean(metadata={"description": "false: an earlier scan of it gave it."})


class ScanAnswerSchema(Schema):
    scan_id = fields.String()
    code = fields.String()
    kind = fields.String()
    channel = fields.String()
    resolution = fields.String(metadata={"description": " | ".join(RESOLUTIONS)})
    store = fields.Nested(ScanStoreSchema, allow_none=True)
    guide = fields.Nested(ScanGuideSchema, allow_none=True)
    wecom_contact_qr_url = fields.String(
        allow_none=True, metadata={"description": "The store's own WeCom QR image, if set."}
    )
    wecom_qr_code = fields.String(
        allow_none=True,
        metadata={
            "description": "The WeCom 「联系我」 QR image of the code (store codes: its guides) "
            "or of the routed guide; null until WeCom has made it."
        },
    )
    community_qr_url = fields.String(allow_none=True)
    coupon = fields.Nested(
        ScanCouponSchema,
        allow_none=True,
        metadata={
            "description": "The coupon the code gave the identified member (see their "
            "wallet); null: anonymous, no coupon on the code, or none left."
        },
    )
    fallback_url = fields.String(
        allow_none=True,
        metadata={
            "description": "The code's fallback page, whenever it has one (the landing page "
            "offers it); resolution fallback_url says the scan was sent there."
        },
    )


class StatsArgsSchema(Schema):
    group_by = DelimitedList(
        fields.String(validate=validate.OneOf(list(DIMENSIONS))),
        load_default=["code"],
        metadata={"description": "Comma-separated: code, channel, store, guide, day."},
    )
    date_from = fields.Date(
        data_key="from",
        load_default=None,
        metadata={"description": "First local day (default: 30 days)."},
    )
    date_to = fields.Date(
        data_key="to",
        load_default=None,
        metadata={"description": "Last local day (default: today)."},
    )


class CodeStatsArgsSchema(Schema):
    date_from = fields.Date(data_key="from", load_default=None)
    date_to = fields.Date(data_key="to", load_default=None)


class StatsTotalsSchema(Schema):
    scans = fields.Integer()
    new_members = fields.Integer()
    bindings = fields.Integer()
    refused = fields.Integer()


class StatsRowSchema(StatsTotalsSchema):
    code_id = fields.String()
    code = fields.String(allow_none=True)
    channel = fields.String()
    store_id = fields.String(allow_none=True)
    store_name = fields.String(allow_none=True)
    guide_id = fields.String(allow_none=True)
    day = fields.Date()


class StatsSchema(Schema):
    group_by = fields.List(fields.String())
    date_from = fields.Date(data_key="from")
    date_to = fields.Date(data_key="to")
    totals = fields.Nested(StatsTotalsSchema)
    rows = fields.List(fields.Nested(StatsRowSchema))
