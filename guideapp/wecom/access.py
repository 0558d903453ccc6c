"""Who configures WeCom and sees its callback events: HQ only (the corp is the brand's).
Risk alerts: HQ all, a store manager their store's, guides none."""

from sqlalchemy import false, true

from guideapp import policy
from guideapp.wecom.models import WecomAlert, WecomConfig, WecomEvent, WecomWelcome


def _alerts(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return WecomAlert.store_id == actor.store_id
    return false()


def register() -> None:
    policy.register_rules(WecomConfig, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_rules(WecomEvent, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_rules(WecomWelcome, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_rules(WecomAlert, read=_alerts)
    policy.register_decision(
        "see_wecom_alerts",
        lambda actor: actor.is_hq or actor.is_manager,
        refusal="Risk alerts are for store managers and HQ.",
    )
    policy.register_decision(
        "configure_wecom",
        lambda actor: actor.is_hq,
        refusal="Only HQ sees and sets the brand's WeCom configuration.",
    )
