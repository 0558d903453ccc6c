"""Request and response shapes for commission rules, entries, settlements and leaderboards."""

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from guideapp.commissions.leaderboards import METRICS, SCOPES
from guideapp.commissions.models import ORDER_BASES, RULE_KINDS, RULE_SCOPES
from guideapp.commissions.settlement import MONTH
from guideapp.extensions import Schema, UTCDateTime
from guideapp.pagination import CursorArgsSchema, page_schema

_fen: dict[str, Any] = dict(validate=validate.Range(min=0, max=10**12), allow_none=True)
_month: dict[str, Any] = dict(
    validate=validate.Regexp(MONTH, error="A month as YYYY-MM (1900-2999), e.g. 2026-11."),
    metadata={"description": "YYYY-MM in the brand group's time zone"},
)


class CommissionTierSchema(Schema):
    recruits = fields.Integer(required=True, validate=validate.Range(min=1))
    bonus_fen = fields.Integer(required=True, validate=validate.Range(min=1, max=10**10))


class CommissionRuleSchema(Schema):
    id = fields.String(dump_only=True)
    rule_key = fields.String(
        dump_only=True,
        metadata={"description": "The rule across its versions (the id of version 1)."},
    )
    version = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    kind = fields.String(required=True, validate=validate.OneOf(RULE_KINDS))
    scope = fields.String(load_default="tenant", validate=validate.OneOf(RULE_SCOPES))
    scope_id = fields.String(
        allow_none=True, metadata={"description": "Region, store or campaign id for those scopes."}
    )
    amount_fen = fields.Integer(**_fen, metadata={"description": "Bounty per recruit, fen."})
    rate_bp = fields.Integer(
        validate=validate.Range(min=0, max=10000),
        allow_none=True,
        metadata={"description": "Basis points of an order (300 = 3%)."},
    )
    order_basis = fields.String(
        validate=validate.OneOf(ORDER_BASES),
        allow_none=True,
        metadata={"description": "order_percent rules: first or binding; null for the others."},
    )
    tiers = fields.List(fields.Nested(CommissionTierSchema), allow_none=True)
    cap_fen = fields.Integer(**_fen, metadata={"description": "Cap per guide per month, fen."})
    active = fields.Boolean(load_default=True)
    effective_from = UTCDateTime(allow_none=True)
    effective_until = UTCDateTime(allow_none=True)
    created_by = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class CommissionRuleInSchema(CommissionRuleSchema):
    """A rule as sent: order_basis is never null (order_percent needs it, others ignore it)."""

    order_basis = fields.String(
        validate=validate.OneOf(ORDER_BASES),
        metadata={"description": "Required for order_percent: first (the first order) or binding."},
    )


class CommissionRuleVersionSchema(CommissionRuleInSchema):
    """A new version: any field may change except the kind; omitted ones carry over."""

    name = fields.String(validate=validate.Length(min=1, max=120))
    kind = fields.String(validate=validate.OneOf(RULE_KINDS))
    scope = fields.String(validate=validate.OneOf(RULE_SCOPES))
    active = fields.Boolean()


class CommissionRuleArgsSchema(CursorArgsSchema):
    rule_key = fields.String()


class CommissionEntrySchema(Schema):
    id = fields.String()
    kind = fields.String()
    amount_fen = fields.Integer()
    amount = fields.String(metadata={"description": "The amount as ¥ text."})
    text = fields.String(metadata={"description": "In words: 招募会员 张三 奖励 ¥5.00"})
    rule_id = fields.String()
    rule_name = fields.String(allow_none=True)
    rule_version = fields.Integer(allow_none=True)
    guide_id = fields.String()
    store_id = fields.String()
    member_id = fields.String(allow_none=True)
    source_type = fields.String()
    source_id = fields.String()
    reverses_id = fields.String(allow_none=True)
    basis_fen = fields.Integer(allow_none=True)
    event_at = fields.DateTime()
    accounting_month = fields.String()
    created_at = fields.DateTime()


class CommissionMonthArgsSchema(CursorArgsSchema):
    month = fields.String(**_month)


class CommissionEntryArgsSchema(CommissionMonthArgsSchema):
    guide_id = fields.String()
    store_id = fields.String()


class MyEarningsSchema(ma.Schema):
    month = fields.String()
    month_state = fields.String(metadata={"description": "open, draft (closed) or approved"})
    earned_fen = fields.Integer()
    clawed_back_fen = fields.Integer()
    net_fen = fields.Integer()
    pending_fen = fields.Integer(metadata={"description": "Net of a month not settled yet."})
    settled_fen = fields.Integer(metadata={"description": "Net of a closed month."})
    summary = fields.String()
    entries = fields.List(fields.Nested(CommissionEntrySchema))
    next_cursor = fields.String(allow_none=True)


class CloseMonthSchema(Schema):
    month = fields.String(required=True, **_month)


class CommissionSettlementSchema(ma.Schema):
    id = fields.String()
    month = fields.String()
    state = fields.String()
    entries = fields.Integer()
    earned_fen = fields.Integer()
    clawed_back_fen = fields.Integer()
    net_fen = fields.Integer()
    closed_at = fields.DateTime()
    closed_by = fields.String(allow_none=True)
    approved_at = fields.DateTime(allow_none=True)
    approved_by = fields.String(allow_none=True)


class CommissionStatementSchema(ma.Schema):
    month = fields.String()
    level = fields.String()
    subject_id = fields.String()
    name = fields.String(allow_none=True)
    store_id = fields.String()
    store_name = fields.String(allow_none=True)
    entries = fields.Integer()
    earned_fen = fields.Integer()
    clawed_back_fen = fields.Integer()
    net_fen = fields.Integer()


class CommissionStatementArgsSchema(CursorArgsSchema):
    level = fields.String(load_default="guide", validate=validate.OneOf(["guide", "store"]))


class CommissionExportArgsSchema(Schema):
    level = fields.String(load_default="guide", validate=validate.OneOf(["guide", "store"]))
    format = fields.String(load_default="xlsx", validate=validate.OneOf(["xlsx", "csv"]))


class CommissionExportInSchema(Schema):
    format = fields.String(
        required=True,
        validate=validate.OneOf(["xlsx", "csv"]),
        metadata={"description": "xlsx (Excel) or csv (UTF-8 with BOM)"},
    )
    level = fields.String(
        load_default="guide",
        validate=validate.OneOf(["guide", "store"]),
        metadata={"description": "One row per guide (default) or per store"},
    )


class LeaderboardArgsSchema(Schema):
    scope = fields.String(load_default="store", validate=validate.OneOf(SCOPES))
    metric = fields.String(load_default="recruits", validate=validate.OneOf(METRICS))
    month = fields.String(**_month)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    store_id = fields.String(metadata={"description": "HQ: which store."})
    region_id = fields.String(metadata={"description": "HQ: which region."})


class LeaderRowSchema(ma.Schema):
    rank = fields.Integer()
    guide_id = fields.String()
    guide_name = fields.String(allow_none=True)
    store_id = fields.String(allow_none=True)
    store_name = fields.String(allow_none=True)
    value = fields.Integer(metadata={"description": "Recruits, or net earnings in fen."})
    value_text = fields.String()
    is_me = fields.Boolean()


class LeaderboardSchema(ma.Schema):
    scope = fields.String()
    scope_id = fields.String()
    metric = fields.String()
    month = fields.String()
    items = fields.List(fields.Nested(LeaderRowSchema))


RulePageSchema = page_schema(CommissionRuleSchema, "CommissionRulePage")
EntryPageSchema = page_schema(CommissionEntrySchema, "CommissionEntryPage")
SettlementPageSchema = page_schema(CommissionSettlementSchema, "CommissionSettlementPage")
StatementPageSchema = page_schema(CommissionStatementSchema, "CommissionStatementPage")
