"""Who configures WeCom and sees its callback events: HQ only (the corp is the brand's).
Customer transfers: HQ all, a manager those out of or into their store, guides none."""

from sqlalchemy import false, or_, true

from guideapp import policy
from guideapp.wecom.models import WecomConfig, WecomEvent, WecomTransfer


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
    policy.register_decision(
        "configure_wecom",
        lambda actor: actor.is_hq,
        refusal="Only HQ sees and sets the brand's WeCom configuration.",
    )
    # Written only by the transfers job (mirroring WeCom): nobody writes them by hand.
    policy.register_rules(WecomTransfer, read=_transfers)
    policy.register_decision(
        "see_wecom_transfers",
        lambda actor: actor.is_hq or actor.is_manager,
        refusal="Only HQ and store managers see WeCom customer transfers.",
    )
