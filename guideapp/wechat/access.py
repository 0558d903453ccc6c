"""Who configures WeChat: HQ only (the apps and keys are the brand's)."""

from guideapp import policy
from guideapp.wechat.models import WechatConfig


def register() -> None:
    policy.register_rules(WechatConfig, read=policy.hq_reads, write=policy.hq_writes)
    policy.register_decision(
        "configure_wechat",
        lambda actor: actor.is_hq,
        refusal="Only HQ sees and sets the brand's WeChat configuration.",
    )
