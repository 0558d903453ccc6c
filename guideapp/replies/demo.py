"""The demo tenant's quick replies: HQ scripts per scene and one for the Shanghai store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from guideapp.db import new_id
from guideapp.members.models import Tag
from guideapp.org.models import Store
from guideapp.replies.models import QuickReply, QuickReplyTag, ReplyCategory
from guideapp.changelog import log_changes, store_scope, tenant_scope

# scene -> (category, [(title, body, tag name or None)])
HQ_SCRIPTS: dict[str, tuple[str, list[tuple[str, str, str | None]]]] = {
    "greeting": (
        "欢迎语",
        [
            (
                "新会员欢迎",
                "{member.name}您好，我是{store.name}的导购{guide.name}，很高兴为您服务！"
                "以后有运动装备的问题随时找我～",
                None,
            ),
            (
                "生日祝福",
                "{member.name}，祝您生日快乐！🎂 作为{member.tier}，本月到店可领生日礼一份，"
                "期待在{store.name}见到您～",
                None,
            ),
        ],
    ),
    "ice_breaking": (
        "破冰话术",
        [
            (
                "跑步爱好者破冰",
                "{member.name}，最近还在坚持跑步吗？我们新到了一批缓震跑鞋，"
                "很适合长距离，有空来店里试穿一下？",
                "跑步",
            ),
            (
                "高频运动关怀",
                "{member.name}，看您每周运动都很规律，真厉害！运动后记得拉伸，"
                "有需要我给您推荐护具～",
                "每周3次以上",
            ),
        ],
    ),
    "product_advice": (
        "产品推荐",
        [
            (
                "复购推荐",
                "{member.name}，您上次买的{member.last_order.product}穿着还合适吗？"
                "同系列出了新配色，老会员有专属折扣哦。",
                None,
            ),
        ],
    ),
    "after_sales": (
        "售后回访",
        [
            (
                "购后回访",
                "{member.name}您好，您在{member.last_order.date}购买的"
                "{member.last_order.product}（¥{member.last_order.amount}）使用还满意吗？"
                "如有任何问题随时联系我。",
                None,
            ),
        ],
    ),
    "win_back": (
        "沉睡唤醒",
        [
            (
                "积分提醒召回",
                "{member.name}，好久不见！您账户里还有{member.points}积分，"
                "可以在{store.name}直接抵现，地址：{store.address}，欢迎回来逛逛～",
                None,
            ),
        ],
    ),
}
STORE_SCRIPT = (
    "南京西路店活动邀约",
    "greeting",
    "{member.name}，本周六下午{store.name}有跑团夜跑活动，{{限30人}}，我帮您留个名额？",
)


def load_replies(session: Session, *, tenant_id: str) -> int:
    tags = dict(
        session.execute(
            select(Tag.name, Tag.id).where(Tag.tenant_id == tenant_id, Tag.store_id.is_(None))
        ).all()
    )
    categories: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []
    reply_tags: list[dict[str, Any]] = []
    for position, (scene, (category_name, scripts)) in enumerate(HQ_SCRIPTS.items()):
        category = {
            "id": new_id(),
            "tenant_id": tenant_id,
            "store_id": None,
            "scene": scene,
            "name": category_name,
            "position": position,
        }
        categories.append(category)
        for title, body, tag_name in scripts:
            tag_ids = [tags[tag_name]] if tag_name in tags else []
            replies.append(
                _reply(tenant_id, "hq", None, scene, category["id"], title, body, tag_ids)
            )
            reply_tags += [
                {"reply_id": replies[-1]["id"], "tag_id": t, "tenant_id": tenant_id}
                for t in tag_ids
            ]
    store_id = session.scalar(
        select(Store.id).where(Store.tenant_id == tenant_id, Store.code == "SH001")
    )
    if store_id:
        title, scene, body = STORE_SCRIPT
        replies.append(_reply(tenant_id, "store", store_id, scene, None, title, body, []))
    session.execute(insert(ReplyCategory), categories)
    session.execute(insert(QuickReply), replies)
    if reply_tags:
        session.execute(insert(QuickReplyTag), reply_tags)
    log_changes(
        session,
        tenant_id=tenant_id,
        table="reply_categories",
        rows=[(c["id"], tenant_scope(tenant_id)) for c in categories],
    )
    log_changes(
        session,
        tenant_id=tenant_id,
        table="quick_replies",
        rows=[
            (
                r["id"],
                store_scope(r["owner_store_id"])
                if r["owner_store_id"]
                else tenant_scope(tenant_id),
            )
            for r in replies
        ],
    )
    return len(replies)


def _reply(tenant_id, level, store_id, scene, category_id, title, body, tag_ids) -> dict:
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "level": level,
        "owner_store_id": store_id,
        "owner_staff_id": None,
        "scene": scene,
        "category_id": category_id,
        "title": title,
        "body": body,
        "tag_ids": tag_ids,
        "tagged": bool(tag_ids),
        "usage_count": 0,
        "version": 1,
        "created_by": None,
    }
