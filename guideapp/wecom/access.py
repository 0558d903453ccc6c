"""Who configures WeCom and sees its callback events: HQ only (the corp is the brand's).
Contact ways: HQ all; a manager their store's codes' and guides' ways; a guide their own."""

from sqlalchemy import or_, select, true

from guideapp import policy
from guideapp.org.models import Staff
from guideapp.scans.models import ScanCode
from guideapp.wecom.models import WecomConfig, WecomContactWay, WecomEvent


def _contact_ways(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return or_(
            WecomContactWay.code_id.in_(
                select(ScanCode.id).where(ScanCode.store_id == actor.store_id)
            ),
            WecomContactWay.guide_id.in_(select(Staff.id).where(Staff.store_id == actor.store_id)),
        )
    return WecomContactWay.guide_id == actor.staff_id


def register() -> None:
    policy.register_rules(WecomConfig, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_rules(WecomEvent, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_rules(WecomContactWay, read=_contact_ways)
    policy.register_decision(
        "configure_wecom",
        lambda actor: actor.is_hq,
        refusal="Only HQ sees and sets the brand's WeCom configuration.",
    )
