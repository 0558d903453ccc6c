"""Coupons over HTTP: templates (HQ, managers), rules (HQ), a member's wallet, issue,
points exchange, redeem."""

from flask.views import MethodView

from guideapp.coupons import automation, exchange, service
from guideapp.coupons import rule_schemas as rs
from guideapp.coupons import schemas as s
from guideapp.extensions import Blueprint
from guideapp.http import current_actor, current_member, db_session

blp = Blueprint("coupons", __name__, url_prefix="/api/v1", description="Coupons")


@blp.route("/coupon-templates")
class Templates(MethodView):
    @blp.arguments(s.TemplateArgsSchema, location="query")
    @blp.response(200, s.TemplatePageSchema)
    def get(self, args):
        """Coupon templates I may send: HQ's and my store's, newest first"""
        return service.list_templates(db_session(), actor=current_actor(), **args)

    @blp.arguments(s.TemplateSchema)
    @blp.response(201, s.TemplateSchema)
    def post(self, data):
        """Write a coupon template (HQ: for the tenant; manager: for the store)"""
        return service.create_template(db_session(), actor=current_actor(), data=data)


@blp.route("/coupon-templates/<template_id>")
class TemplateById(MethodView):
    @blp.response(200, s.TemplateSchema)
    def get(self, template_id):
        """One coupon template"""
        return service.get_template(db_session(), actor=current_actor(), template_id=template_id)

    @blp.arguments(s.TemplatePatchSchema)
    @blp.response(200, s.TemplateSchema)
    def patch(self, data, template_id):
        """Edit what an issued coupon does not promise: name, text (a new version), stock,
        limit, pause"""
        return service.update_template(
            db_session(), actor=current_actor(), template_id=template_id, data=data
        )


@blp.route("/members/<member_id>/coupons")
class MemberCoupons(MethodView):
    @blp.arguments(s.WalletArgsSchema, location="query")
    @blp.response(200, s.CouponPageSchema)
    def get(self, args, member_id):
        """The member's wallet: available, used and expired coupons, newest first"""
        return service.wallet(db_session(), actor=current_actor(), member_id=member_id, **args)

    @blp.arguments(s.IssueSchema)
    @blp.response(201, s.CouponSchema)
    @blp.alt_response(409, description="Out of stock, at the per-member limit, or staff.")
    def post(self, data, member_id):
        """Send the member a coupon (from their card or a task); Idempotency-Key makes a
        retry harmless"""
        coupon, _ = service.issue_to_member(
            db_session(), actor=current_actor(), member_id=member_id, **data
        )
        return service.present_one(db_session(), coupon)


@blp.route("/wechat/me/coupons")
class MyCoupons(MethodView):
    @blp.for_members
    @blp.arguments(s.WalletArgsSchema, location="query")
    @blp.response(200, s.MemberCouponPageSchema)
    def get(self, args):
        """My wallet (a member, signed in with WeChat): my coupons, available, used and
        expired with the reason, newest first"""
        me = current_member()
        return service.member_wallet(
            db_session(), tenant_id=me.tenant_id, member_id=me.member_id, **args
        )


@blp.route("/members/<member_id>/coupons/exchange")
class ExchangePoints(MethodView):
    @blp.arguments(s.ExchangeSchema)
    @blp.response(201, s.ExchangedSchema)
    @blp.alt_response(409, description="Too few points (the balance named), out of stock, ...")
    def post(self, data, member_id):
        """Exchange the member's points for a coupon (the template's points_cost), both in
        one step; Idempotency-Key makes a retry harmless"""
        return exchange.exchange_for_member(
            db_session(), actor=current_actor(), member_id=member_id, **data
        )


@blp.route("/coupon-rules")
class Rules(MethodView):
    @blp.arguments(rs.RuleArgsSchema, location="query")
    @blp.response(200, rs.RulePageSchema)
    def get(self, args):
        """Coupon automation rules (HQ), newest first"""
        return automation.list_rules(db_session(), actor=current_actor(), **args)

    @blp.arguments(rs.RuleSchema)
    @blp.response(201, rs.RuleSchema)
    def post(self, data):
        """A coupon issued on a member occasion (HQ): first or Nth order, birthday, joining,
        reaching a tier, N silent days; once per member and occasion"""
        return automation.create_rule(db_session(), actor=current_actor(), data=data)


@blp.route("/coupon-rules/<rule_id>")
class RuleById(MethodView):
    @blp.response(200, rs.RuleSchema)
    def get(self, rule_id):
        """One coupon rule"""
        return automation.get_rule(db_session(), actor=current_actor(), rule_id=rule_id)

    @blp.arguments(rs.RulePatchSchema)
    @blp.response(200, rs.RuleSchema)
    def patch(self, data, rule_id):
        """Rename, retune, change the template or window, pause (the occasion stays)"""
        return automation.update_rule(
            db_session(), actor=current_actor(), rule_id=rule_id, data=data
        )


@blp.route("/coupons/redeem")
class Redeem(MethodView):
    @blp.arguments(s.RedeemSchema)
    @blp.response(200, s.RedemptionSchema)
    @blp.alt_response(404, description="No coupon with this code.")
    @blp.alt_response(409, description="Used, expired, not yet valid, withdrawn, or not stackable.")
    def post(self, data):
        """Redeem coupons on an order at a till: the discount, each coupon used exactly once
        (a retry of the same order answers the same)"""
        return service.redeem(db_session(), actor=current_actor(), data=data)


from guideapp.coupons import report_routes  # noqa: E402, F401  (bulk issue, reports)
