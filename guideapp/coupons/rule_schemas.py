"""Request and response shapes of coupon rules (HQ's automation)."""

from marshmallow import ValidationError, fields, validate, validates_schema

from guideapp.coupons.models import OCCASIONS
from guideapp.extensions import Schema
from guideapp.members.models import TIERS
from guideapp.pagination import CursorArgsSchema, page_schema

_ID = validate.Length(min=1, max=32)

# What each occasion's params hold: name -> (type check, what to say).
RULE_PARAMS = {
    "first_order": {},
    "nth_order": {"n": (lambda v: _int_in(v, 2, 1000), "the order that fires it, 2-1000")},
    "birthday": {},
    "member_joined": {},
    "tier_changed": {
        "tier": (lambda v: v in TIERS[1:], "the tier reached: " + ", ".join(TIERS[1:]))
    },
    "silent": {"silent_days": (lambda v: _int_in(v, 1, 3650), "days without an order, 1-3650")},
}


def _int_in(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_rule_params(occasion: str, params: dict) -> None:
    """Exactly the params the occasion needs (ValidationError naming `params` otherwise)."""
    wanted = RULE_PARAMS.get(occasion, {})
    problems = [f"{name}: not for {occasion}." for name in params if name not in wanted]
    for name, (ok, what) in wanted.items():
        if not ok(params.get(name)):
            problems.append(f"{occasion} needs {name}, {what}.")
    if problems:
        raise ValidationError({"params": problems})


_HHMM = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="A local time, HH:MM.")


class RuleSchema(Schema):
    id = fields.String(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    occasion = fields.String(
        required=True,
        validate=validate.OneOf(OCCASIONS),
        metadata={
            "description": "first_order, nth_order (params.n) on the order that makes it; "
            "birthday, member_joined, tier_changed (params.tier), silent (params.silent_days) "
            "from the scheduler, in business hours. Each fires once per member and occasion."
        },
    )
    params = fields.Dict(keys=fields.String(), load_default=dict)
    template_id = fields.String(
        required=True, validate=_ID, metadata={"description": "An active coupon template."}
    )
    window_start = fields.String(
        load_default="10:00",
        validate=_HHMM,
        metadata={"description": "Scheduler-issued coupons go out from this local time."},
    )
    active = fields.Boolean(load_default=True)
    created_by = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)

    @validates_schema
    def _params(self, data, **_):
        if data.get("occasion") in OCCASIONS:
            check_rule_params(data["occasion"], data.get("params") or {})


class RulePatchSchema(Schema):
    """Everything but the occasion (what a coupon was issued for stays what it was)."""

    name = fields.String(validate=validate.Length(min=1, max=120))
    params = fields.Dict(keys=fields.String())
    template_id = fields.String(validate=_ID)
    window_start = fields.String(validate=_HHMM)
    active = fields.Boolean()


class RuleArgsSchema(CursorArgsSchema):
    occasion = fields.String(validate=validate.OneOf(OCCASIONS))
    active = fields.Boolean()


RulePageSchema = page_schema(RuleSchema, "CouponRulePage")
