"""Who configures WeCom and sees its callback events: HQ only (the corp is the brand's)."""

from guideapp import policy
from guideapp.wecom.models import WecomConfig, WecomEvent


def register() -> None:
    policy.register_rules(WecomConfig, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_rules(WecomEvent, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_decision(
        "configure_wecom",
        lambda actor: actor.is_hq,
        refusal="Only HQ sees and sets the brand's WeCom configuration.",
    )
