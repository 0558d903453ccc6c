"""Who sees and writes coupon templates, rules, coupons and redemptions; who issues and
who redeems."""

from sqlalchemy import select, true

from guideapp import policy
from guideapp.coupons.models import Coupon, CouponRedemption, CouponRule, CouponTemplate
from guideapp.members.models import Member

ISSUE = "coupons.issue"
REDEEM = "coupons.redeem"
REPORT = "coupons.report"


def _template_writes(actor, template, action):
    if template.store_id is None:
        return actor.is_hq
    return actor.is_manager and template.store_id == actor.store_id


def _coupons(actor):
    # A coupon is seen with its member: the member read rule decides.
    if actor.is_hq:
        return true()
    return Coupon.member_id.in_(select(Member.id).where(policy.visible(actor, Member)))


def _redemptions(actor):
    if actor.is_hq:
        return true()
    return CouponRedemption.store_id == actor.store_id


def _may_issue(actor, template) -> bool:
    # Any staff member sends what they may see; a store template is its store's to send.
    return template.store_id is None or template.store_id == actor.store_id


def _may_redeem(actor, store) -> bool:
    return actor.is_hq or (actor.store_id is not None and store.id == actor.store_id)


def register() -> None:
    policy.register_rules(
        CouponTemplate, read=policy.store_or_hq_level(CouponTemplate), write=_template_writes
    )
    policy.register_rules(Coupon, read=_coupons)
    policy.register_rules(CouponRedemption, read=_redemptions)
    policy.register_rules(CouponRule, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_decision(ISSUE, _may_issue, refusal="This coupon is another store's to send.")
    policy.register_decision(
        REDEEM, _may_redeem, refusal="Coupons are redeemed at your own store's till."
    )
    policy.register_decision(
        REPORT,
        lambda actor: actor.is_hq or (actor.is_manager and actor.store_id is not None),
        refusal="Coupon reports are for HQ and store managers.",
    )
