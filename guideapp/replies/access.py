"""Who sees and changes quick replies and their categories."""

from sqlalchemy import and_, or_

from guideapp import policy
from guideapp.replies.models import QuickReply, ReplyCategory


def _reply_category_writes(actor, category, action):
    if category.store_id is None:
        return actor.is_hq
    return actor.is_manager and category.store_id == actor.store_id


def _quick_replies(actor):
    # HQ's replies, the store's (every store's for HQ) and the caller's own personal ones;
    # personal replies stay private to their owner, managers and HQ included.
    store = QuickReply.level == "store"
    if not actor.is_hq:
        store = and_(store, QuickReply.owner_store_id == actor.store_id)
    mine = and_(QuickReply.level == "personal", QuickReply.owner_staff_id == actor.staff_id)
    return or_(QuickReply.level == "hq", store, mine)


def _quick_reply_writes(actor, reply, action):
    if reply.level == "hq":
        return actor.is_hq
    if reply.level == "store":
        return actor.is_manager and reply.owner_store_id == actor.store_id
    return reply.level == "personal" and reply.owner_staff_id == actor.staff_id


def register() -> None:
    policy.register_rules(
        ReplyCategory,
        read=policy.store_or_hq_level(ReplyCategory),
        write=_reply_category_writes,
    )
    policy.register_rules(QuickReply, read=_quick_replies, write=_quick_reply_writes)
