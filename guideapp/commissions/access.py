"""Who sees commission entries, recruits, rules, statements and settlements; who writes them."""

from sqlalchemy import and_, or_, true

from guideapp import policy
from guideapp.commissions.models import (
    CommissionEntry,
    CommissionRecruit,
    CommissionRule,
    CommissionSettlement,
    CommissionStatement,
)


def _own_or_store(model):
    # Guides see their own earnings and recruits, managers their store's, HQ the tenant's.
    def rule(actor):
        if actor.is_hq:
            return true()
        if actor.is_manager:
            return model.store_id == actor.store_id
        return model.guide_id == actor.staff_id

    return rule


def _commission_rules(actor):
    if actor.is_hq:
        return true()
    # Staff see the rules they can earn under: tenant-wide, campaign, their region or store.
    return or_(
        CommissionRule.scope.in_(("tenant", "campaign")),
        and_(CommissionRule.scope == "region", CommissionRule.scope_id == actor.region_id),
        and_(CommissionRule.scope == "store", CommissionRule.scope_id == actor.store_id),
    )


def _commission_statements(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return CommissionStatement.store_id == actor.store_id
    return and_(
        CommissionStatement.level == "guide", CommissionStatement.subject_id == actor.staff_id
    )


def register() -> None:
    for model in (CommissionEntry, CommissionRecruit):
        policy.register_rules(model, read=_own_or_store(model))
    # Only HQ writes rules and settles; settlements are HQ's to read (staff read statements).
    policy.register_rules(CommissionRule, read=_commission_rules, write=policy.hq_writes)
    policy.register_rules(CommissionStatement, read=_commission_statements)
    policy.register_rules(CommissionSettlement, read=policy.hq_reads, write=policy.hq_writes)
