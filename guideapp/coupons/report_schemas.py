"""Request and response shapes for HQ's bulk issue to a segment and the coupon reports."""

from marshmallow import fields, validate

from guideapp.coupons.reports import GROUPS, MAX_DAYS
from guideapp.extensions import Schema
from guideapp.members.schemas import SegmentSchema

_ID = validate.Length(min=1, max=32)


def _ids():
    return fields.List(
        fields.String(validate=_ID), load_default=list, validate=validate.Length(max=5000)
    )


class BulkIssueSchema(Schema):
    segment = fields.Nested(
        SegmentSchema,
        load_default=dict,
        metadata={"description": "The campaign segment's criteria: members matching all."},
    )
    store_ids = _ids()
    region_ids = _ids()
    all = fields.Boolean(
        load_default=False,
        metadata={"description": "Every active member (with store_ids / region_ids: of those)."},
    )


class ReportArgsSchema(Schema):
    group_by = fields.String(
        load_default="template",
        validate=validate.OneOf(GROUPS),
        metadata={"description": " | ".join(GROUPS)},
    )
    template_id = fields.String(load_default=None, validate=_ID)
    date_from = fields.Date(
        data_key="from",
        load_default=None,
        metadata={"description": "First local day (default: 30 days up to `to`)."},
    )
    date_to = fields.Date(
        data_key="to",
        load_default=None,
        metadata={"description": f"Last local day (default: today); at most {MAX_DAYS} days."},
    )


class ReportFiguresSchema(Schema):
    issued = fields.Integer(metadata={"description": "Coupons issued in the window."})
    redeemed = fields.Integer(
        metadata={"description": "Redemptions in the window, reversed ones left out."}
    )
    redemption_rate = fields.Float(
        allow_none=True, metadata={"description": "redeemed / issued; null when none issued."}
    )
    discount_fen = fields.Integer()
    orders = fields.Integer(metadata={"description": "Distinct orders the redemptions are on."})
    gmv_fen = fields.Integer(metadata={"description": "What those orders' members paid."})


class ReportRowSchema(ReportFiguresSchema):
    key = fields.String(
        allow_none=True,
        metadata={
            "description": "The template, campaign, rule, guide or store id, or the local "
            "day (YYYY-MM-DD); null: coupons from no campaign, rule or guide."
        },
    )
    name = fields.String(allow_none=True)


class ReportSchema(Schema):
    group_by = fields.String()
    date_from = fields.Date(data_key="from")
    date_to = fields.Date(data_key="to")
    timezone = fields.String(metadata={"description": "The tenant's zone the days are in."})
    template_id = fields.String(allow_none=True)
    totals = fields.Nested(ReportFiguresSchema)
    rows = fields.List(fields.Nested(ReportRowSchema))
