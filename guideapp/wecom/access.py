"""Who configures WeCom and sees its callback events and welcomes: HQ only (the corp is the
brand's). Risk alerts: HQ all, a store manager their store's, guides none. Customer
transfers: HQ all, a manager those out of or into their store, guides none. Contact ways:
HQ all; a manager their store's codes' and guides' ways; a guide their own."""

from sqlalchemy import false, or_, select, true

from guideapp import policy
from guideapp.org.models import Staff
from guideapp.scans.models import ScanCode
from guideapp.wecom.models import (
    WecomAlert,
    WecomConfig,
    WecomContactWay,
    WecomEvent,
    WecomTransfer,
    WecomWelcome,
)


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


def _alerts(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return WecomAlert.store_id == actor.store_id
    return false()


def _transfers(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return or_(
            WecomTransfer.from_store_id == actor.store_id,
            WecomTransfer.to_store_id == actor.store_id,
        )
    return false()


def register() -> None:
    policy.register_rules(WecomConfig, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_rules(WecomEvent, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_rules(WecomWelcome, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_rules(WecomContactWay, read=_contact_ways)
    policy.register_decision(
        "configure_wecom",
        lambda actor: actor.is_hq,
        refusal="Only HQ sees and sets the brand's WeCom configuration.",
    )
    policy.register_rules(WecomAlert, read=_alerts)
    policy.register_decision(
        "see_wecom_alerts",
        lambda actor: actor.is_hq or actor.is_manager,
        refusal="Risk alerts are for store managers and HQ.",
    )
    # Written only by the transfers job (mirroring WeCom): nobody writes them by hand.
    policy.register_rules(WecomTransfer, read=_transfers)
    policy.register_decision(
        "see_wecom_transfers",
        lambda actor: actor.is_hq or actor.is_manager,
        refusal="Only HQ and store managers see WeCom customer transfers.",
    )
