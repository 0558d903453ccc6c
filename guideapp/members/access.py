"""Who sees and changes members, their notes, tags, orders and tag definitions; who sees a
full phone number; who feeds orders, refunds and import files."""

from sqlalchemy import select

from guideapp import policy
from guideapp.members.models import (
    Member,
    MemberNote,
    MemberTag,
    Order,
    QuestionnaireCode,
    Tag,
    TagGroup,
)

SEE_PHONE = "members.see_phone"
FEED_ORDERS = "members.feed_orders"


# A guide sees the members bound to them and the store's unassigned pool.
_members = policy.own_or_store_pool(Member.store_id, Member.guide_id)


def _member_writes(actor, member, action):
    if actor.is_hq:
        return True
    in_store = member.store_id == actor.store_id
    if actor.is_manager:
        return in_store and action in {"note", "tag", "bind", "transfer", "points", "update"}
    mine = member.guide_id == actor.staff_id
    pool = in_store and member.guide_id is None
    return (mine and action in {"note", "tag", "update"}) or (pool and action == "claim")


def _of_visible_members(model):
    def rule(actor):
        return model.member_id.in_(select(Member.id).where(policy.visible(actor, Member)))

    return rule


def _tag_definition_writes(actor, record, action):
    if actor.is_hq:
        return True
    return actor.is_manager and record.store_id == actor.store_id


def can_see_phone(actor, member) -> bool:
    """A full phone number is the business of HQ, the member's store manager and their
    guide; everyone else who may see the member (a guide looking at the pool) sees it masked."""
    return (
        actor.is_hq
        or (actor.is_manager and member.store_id == actor.store_id)
        or member.guide_id == actor.staff_id
    )


def sees_others_phones(actor) -> bool:
    """HQ and managers see full phones of members who are not their own (can_see_phone);
    such a look is audited, so their member pages write (service._audit_phones_shown)."""
    return actor.is_hq or actor.is_manager


def register() -> None:
    policy.register_rules(Member, read=_members, write=_member_writes)
    for model in (MemberNote, MemberTag, Order):
        policy.register_rules(model, read=_of_visible_members(model))
    for definition in (TagGroup, Tag):
        policy.register_rules(
            definition, read=policy.store_or_hq_level(definition), write=_tag_definition_writes
        )
    policy.register_rules(QuestionnaireCode, read=policy.whole_tenant, write=policy.hq_writes)
    policy.register_decision(SEE_PHONE, can_see_phone, refusal="The phone number is masked.")
    policy.register_decision(
        FEED_ORDERS,
        lambda actor: actor.is_hq,
        refusal="Only HQ feeds orders and imports into the system.",
    )
