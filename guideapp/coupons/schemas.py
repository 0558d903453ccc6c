"""Request and response shapes for coupon templates, wallets, issues and redemptions."""

from marshmallow import ValidationError, fields, validate, validates_schema

from guideapp.coupons.models import KINDS, SOURCES, STATES
from guideapp.extensions import Schema, UTCDateTime
from guideapp.members.models import CHANNELS
from guideapp.pagination import CursorArgsSchema, page_schema

_FEN = validate.Range(min=0, max=10**12)
_ID = validate.Length(min=1, max=32)


def _ids(max_items: int = 500):
    return fields.List(
        fields.String(validate=_ID), load_default=list, validate=validate.Length(max=max_items)
    )


class TemplateSchema(Schema):
    id = fields.String(dump_only=True)
    store_id = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "null: an HQ template; else the manager's store (only there)."},
    )
    name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    kind = fields.String(
        required=True,
        validate=validate.OneOf(KINDS),
        metadata={
            "description": "amount_off (amount_off_fen), percent_off (percent_off_bp), gift."
        },
    )
    amount_off_fen = fields.Integer(
        strict=True, allow_none=True, load_default=None, validate=validate.Range(min=1, max=10**10)
    )
    percent_off_bp = fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=1, max=10_000),
        metadata={
            "description": "Basis points taken off: 2000 = 20% off (a 八折 coupon). "
            "The discount is rounded down to the fen."
        },
    )
    max_discount_fen = fields.Integer(
        strict=True, allow_none=True, load_default=None, validate=validate.Range(min=1, max=10**10)
    )
    gift_item = fields.String(
        allow_none=True, load_default=None, validate=validate.Length(min=1, max=120)
    )
    threshold_fen = fields.Integer(strict=True, load_default=0, validate=_FEN)
    valid_from = UTCDateTime(allow_none=True, load_default=None)
    valid_to = UTCDateTime(allow_none=True, load_default=None)
    valid_days = fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=1, max=3660),
        metadata={"description": "Valid from issue to the end of the Nth local day."},
    )
    store_ids = _ids()
    region_ids = _ids()
    channels = fields.List(
        fields.String(validate=validate.OneOf(CHANNELS)),
        load_default=list,
        validate=validate.Length(max=len(CHANNELS)),
    )
    stock_total = fields.Integer(
        strict=True, allow_none=True, load_default=None, validate=validate.Range(min=1, max=10**9)
    )
    issued_count = fields.Integer(dump_only=True)
    low_stock_threshold = fields.Integer(
        strict=True, allow_none=True, load_default=None, validate=validate.Range(min=0, max=10**9)
    )
    low_stock_at = fields.DateTime(dump_only=True, allow_none=True)
    per_member_limit = fields.Integer(
        strict=True, load_default=1, validate=validate.Range(min=1, max=1000)
    )
    stackable = fields.Boolean(load_default=False)
    return_on_refund = fields.Boolean(load_default=True)
    points_cost = fields.Integer(
        strict=True, allow_none=True, load_default=None, validate=validate.Range(min=1, max=10**9)
    )
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    version = fields.Integer(dump_only=True)
    active = fields.Boolean(load_default=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)

    @validates_schema
    def _benefit_and_validity(self, data, **_):
        check_template(data)


def check_template(data: dict) -> None:
    """The benefit matches the kind, and the validity is a window or a number of days."""
    errors: dict[str, list[str]] = {}
    kind = data.get("kind")
    if kind == "amount_off" and not data.get("amount_off_fen"):
        errors["amount_off_fen"] = ["An amount_off coupon names the fen it takes off."]
    if kind == "percent_off" and not data.get("percent_off_bp"):
        errors["percent_off_bp"] = ["A percent_off coupon names the basis points it takes off."]
    if kind == "gift" and not data.get("gift_item"):
        errors["gift_item"] = ["A gift coupon names the gift."]
    for name, only in (
        ("amount_off_fen", "amount_off"),
        ("percent_off_bp", "percent_off"),
        ("max_discount_fen", "percent_off"),
        ("gift_item", "gift"),
    ):
        if data.get(name) is not None and kind != only:
            errors.setdefault(name, []).append(f"Only for {only} coupons.")
    window = data.get("valid_from") is not None or data.get("valid_to") is not None
    if window == (data.get("valid_days") is not None):
        errors["valid_days"] = ["Give either valid_days or valid_from and valid_to."]
    elif window:
        if data.get("valid_from") is None or data.get("valid_to") is None:
            errors["valid_to"] = ["A window has both valid_from and valid_to."]
        elif data["valid_from"] >= data["valid_to"]:
            errors["valid_to"] = ["Must be after valid_from."]
    stock, low = data.get("stock_total"), data.get("low_stock_threshold")
    if low is not None and (stock is None or low >= stock):
        errors["low_stock_threshold"] = ["Below stock_total (and only with a stock)."]
    if errors:
        raise ValidationError(errors)


class TemplatePatchSchema(Schema):
    """What may change once coupons are out: never what an issued coupon promises."""

    name = fields.String(validate=validate.Length(min=1, max=60))
    description = fields.String(validate=validate.Length(max=2000))
    stock_total = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=1, max=10**9)
    )
    low_stock_threshold = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=0, max=10**9)
    )
    per_member_limit = fields.Integer(strict=True, validate=validate.Range(min=1, max=1000))
    points_cost = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=1, max=10**9)
    )
    active = fields.Boolean()


class TemplateArgsSchema(CursorArgsSchema):
    active = fields.Boolean()
    low_stock = fields.Boolean(metadata={"description": "Only templates at their low-stock alert."})


class CouponSchema(Schema):
    id = fields.String(dump_only=True)
    template_id = fields.String()
    template_version = fields.Integer()
    member_id = fields.String()
    code = fields.String()
    state = fields.String(validate=validate.OneOf(STATES))
    status = fields.String(
        metadata={"description": "available, used, expired (also when past valid_to), revoked."}
    )
    state_reason = fields.String(allow_none=True)
    valid_from = fields.DateTime()
    valid_to = fields.DateTime()
    source = fields.String(validate=validate.OneOf(SOURCES))
    source_id = fields.String(allow_none=True)
    issued_by = fields.String(allow_none=True)
    store_id = fields.String(allow_none=True)
    task_id = fields.String(allow_none=True)
    campaign_id = fields.String(allow_none=True)
    issued_at = fields.DateTime()
    used_at = fields.DateTime(allow_none=True)
    name = fields.String(metadata={"description": "The template's name."})
    kind = fields.String()
    amount_off_fen = fields.Integer(allow_none=True)
    percent_off_bp = fields.Integer(allow_none=True)
    max_discount_fen = fields.Integer(allow_none=True)
    gift_item = fields.String(allow_none=True)
    threshold_fen = fields.Integer()
    description = fields.String()


CouponPageSchema = page_schema(CouponSchema, "CouponPage")


class MemberCouponSchema(Schema):
    """A coupon as its member sees it: no staff, task or campaign ids."""

    id = fields.String()
    code = fields.String(metadata={"description": "What the till scans or types."})
    status = fields.String(metadata={"description": "available, used, expired, revoked."})
    state_reason = fields.String(
        allow_none=True, metadata={"description": "Why: expired, refunded, ..."}
    )
    valid_from = fields.DateTime()
    valid_to = fields.DateTime()
    issued_at = fields.DateTime()
    used_at = fields.DateTime(allow_none=True)
    name = fields.String()
    kind = fields.String()
    amount_off_fen = fields.Integer(allow_none=True)
    percent_off_bp = fields.Integer(allow_none=True)
    max_discount_fen = fields.Integer(allow_none=True)
    gift_item = fields.String(allow_none=True)
    threshold_fen = fields.Integer()
    description = fields.String()


MemberCouponPageSchema = page_schema(MemberCouponSchema, "MemberCouponPage")
TemplatePageSchema = page_schema(TemplateSchema, "CouponTemplatePage")


class WalletArgsSchema(CursorArgsSchema):
    status = fields.String(validate=validate.OneOf(("available", "used", "expired", "revoked")))


class IssueSchema(Schema):
    template_id = fields.String(required=True, validate=_ID)
    task_id = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "The task that asked for it (its campaign is kept too)."},
    )


class RedeemSchema(Schema):
    codes = fields.List(
        fields.String(validate=validate.Length(min=1, max=40)),
        required=True,
        validate=validate.Length(min=1, max=10),
        metadata={"description": "The coupon codes the till scanned, in the order applied."},
    )
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    order_no = fields.String(required=True, validate=validate.Length(min=1, max=64))
    amount_fen = fields.Integer(
        required=True,
        strict=True,
        validate=_FEN,
        metadata={"description": "The order's amount before coupons."},
    )
    store_id = fields.String(load_default=None, validate=_ID)
    store_code = fields.String(load_default=None, validate=validate.Length(min=1, max=40))


class RedeemedCouponSchema(Schema):
    id = fields.String()
    code = fields.String()
    template_id = fields.String()
    name = fields.String()
    kind = fields.String()
    gift_item = fields.String(allow_none=True)
    discount_fen = fields.Integer()
    redemption_id = fields.String()
    redeemed_at = fields.DateTime()


class RedemptionSchema(Schema):
    channel = fields.String()
    order_no = fields.String()
    amount_fen = fields.Integer()
    discount_fen = fields.Integer()
    pay_fen = fields.Integer(metadata={"description": "What the member pays."})
    created = fields.Boolean(metadata={"description": "false: a retry of an earlier redemption."})
    coupons = fields.List(fields.Nested(RedeemedCouponSchema))


class ExchangeSchema(Schema):
    template_id = fields.String(
        required=True, validate=_ID, metadata={"description": "A template with a points_cost."}
    )


class ExchangedSchema(Schema):
    coupon = fields.Nested(CouponSchema)
    points_spent = fields.Integer(metadata={"description": "0: a retry of an earlier exchange."})
    points_balance = fields.Integer()
