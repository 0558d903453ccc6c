"""Coupons over HTTP: templates (HQ, managers), a member's wallet, issue, redeem."""

from flask.views import MethodView

from guideapp.coupons import schemas as s
from guideapp.coupons import service
from guideapp.extensions import Blueprint
from guideapp.http import current_actor, db_session

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
