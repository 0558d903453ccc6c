"""Who sees and changes WeChat Pay merchants: HQ only (they hold the brand's payment keys)."""

from guideapp import policy
from guideapp.wechatpay.models import PayMerchant


def register() -> None:
    policy.register_rules(PayMerchant, read=policy.hq_reads, write=policy.hq_writes)
