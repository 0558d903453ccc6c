"""Quick-reply use cases: list what applies to me, write by level, render for a member."""

from __future__ import annotations

from typing import cast

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.references import resolve_id, resolve_ids
from guideapp.policy.actor import Actor
from guideapp.db import any_param, utcnow
from guideapp.statements import Prebuilt
from guideapp.errors import Forbidden, InvalidInput
from guideapp.members import service as members
from guideapp.members.models import MemberTag, Tag
from guideapp.pagination import KeptPage, paginate
from guideapp.replies import render
from guideapp.replies.context import placeholder_values
from guideapp.replies.models import QuickReply, QuickReplyTag, ReplyCategory
from guideapp.changelog import log_change, staff_scope, store_scope, tenant_scope

EDITABLE = ("scene", "category_id", "title", "body", "tag_ids")
_BY_USE = [QuickReply.usage_count, QuickReply.id]  # most used first


def reply_scopes(reply: QuickReply) -> list[str]:
    """Where a reply lives on phones: HQ's in the tenant, a store's, a person's own."""
    if reply.level == "hq":
        return [tenant_scope(reply.tenant_id)]
    if reply.level == "store":
        return [store_scope(cast(str, reply.owner_store_id))]  # the level check: it has one
    return [staff_scope(cast(str, reply.owner_staff_id))]


def log_reply(session: Session, reply: QuickReply, old_scopes=(), deleted=False) -> None:
    log_change(
        session,
        tenant_id=reply.tenant_id,
        table="quick_replies",
        record_id=reply.id,
        scopes={*old_scopes, *reply_scopes(reply)},
        deleted=deleted,
    )


def check_body(body: str) -> render.Template:
    try:
        return render.parse(body)
    except render.TemplateError as exc:
        raise InvalidInput(" ".join(exc.problems), errors={"body": exc.problems}) from None


# --- listing and reading -------------------------------------------------------------


def list_replies(
    session: Session,
    *,
    actor: Actor,
    limit: int,
    cursor: str | None,
    scene=None,
    category_id=None,
    tag_id=None,
    member_id=None,
    level=None,
    q=None,
):
    """Most used first; HQ's, my store's and my own, narrowed by the filters given."""
    if not any((scene, category_id, tag_id, member_id, level, q)):  # what a phone opens
        return _EVERY_REPLY.page(
            session, actor.bound_values(), variant=actor.shape, limit=limit, cursor=cursor
        )
    stmt = policy.scoped_select(actor, QuickReply)
    if scene:
        stmt = stmt.where(QuickReply.scene == scene)
    if level:
        stmt = stmt.where(QuickReply.level == level)
    if category_id:
        stmt = stmt.where(QuickReply.category_id == category_id)
    if q:
        stmt = stmt.where(QuickReply.title.contains(q, autoescape=True))
    if tag_id:
        stmt = stmt.where(
            QuickReply.id.in_(select(QuickReplyTag.reply_id).where(QuickReplyTag.tag_id == tag_id))
        )
    if member_id:
        member = members.get_member(session, actor=actor, member_id=member_id)
        tag_ids = list(
            session.scalars(select(MemberTag.tag_id).where(MemberTag.member_id == member.id))
        )
        for_tags = select(QuickReplyTag.reply_id).where(QuickReplyTag.tag_id.in_(tag_ids))
        stmt = stmt.where(or_(QuickReply.tagged.is_(False), QuickReply.id.in_(for_tags)))
    return paginate(session, stmt, _BY_USE, limit=limit, cursor=cursor, descending=True)


_EVERY_REPLY = KeptPage(
    lambda shape: policy.scoped_select(Actor.parametric(shape), QuickReply),
    _BY_USE,
    descending=True,
)


def suggestion_summaries(session: Session, actor: Actor, reply_ids) -> dict[str, dict]:
    """What an inbox item shows of its suggested quick reply (placeholders left to render)."""
    if not reply_ids:
        return {}
    params = {**actor.bound_values(), "reply_ids": sorted(reply_ids)}
    rows = _SUMMARIES.execute(session, params, actor.shape).mappings()
    return {row["id"]: row for row in rows}


_SUMMARIES = Prebuilt(
    lambda dialect, shape: (
        policy.scoped_select(Actor.parametric(shape), QuickReply)
        .with_only_columns(QuickReply.id, QuickReply.scene, QuickReply.title, QuickReply.body)
        .where(any_param(dialect, QuickReply.id, "reply_ids"))
    ),
    reads=True,
)


def get_reply(session: Session, *, actor: Actor, reply_id: str, action: str | None = None):
    reply = policy.get_visible(session, actor, QuickReply, reply_id, label="Quick reply")
    if action:
        policy.require_write(actor, reply, action)
    return reply


# --- writing ------------------------------------------------------------------------------


def _owners(actor: Actor, level: str) -> dict:
    if level == "store":
        return {"owner_store_id": actor.store_id, "owner_staff_id": None}
    if level == "personal":
        return {"owner_store_id": None, "owner_staff_id": actor.staff_id}
    return {"owner_store_id": None, "owner_staff_id": None}


def default_level(actor: Actor) -> str:
    return "hq" if actor.is_hq else "store" if actor.is_manager else "personal"


def create_reply(session: Session, *, actor: Actor, data: dict) -> QuickReply:
    data = dict(data)
    level = data.pop("level", None) or default_level(actor)
    reply = QuickReply(
        tenant_id=actor.tenant_id,
        level=level,
        created_by=actor.staff_id,
        usage_count=0,
        version=1,
        tag_ids=[],
        **_owners(actor, level),
    )
    policy.require_write(actor, reply, "create")
    _apply(session, actor, reply, data)
    session.add(reply)
    session.flush()
    _store_tags(session, reply)
    log_reply(session, reply)
    return reply


def update_reply(session: Session, *, actor: Actor, reply: QuickReply, data: dict):
    """`reply` comes from get_reply(action="update"); a level change must be allowed too."""
    old_scopes = reply_scopes(reply)
    data = dict(data)
    level = data.pop("level", None)
    if level and level != reply.level:
        reply.level = level
        for key, value in _owners(actor, level).items():
            setattr(reply, key, value)
        if not policy.can_write(actor, reply, "update"):
            raise Forbidden(f"Your role ({actor.role}) may not move this reply to level {level}.")
    current = {k: getattr(reply, k) for k in EDITABLE}
    if "category_id" in data and "scene" not in data:
        current["scene"] = None  # the new category's scene
    _apply(session, actor, reply, {**current, **data})
    reply.version += 1
    reply.updated_at = utcnow()
    session.flush()
    _store_tags(session, reply)
    log_reply(session, reply, old_scopes=old_scopes)
    return reply


def delete_reply(session: Session, *, actor: Actor, reply: QuickReply) -> None:
    session.execute(delete(QuickReplyTag).where(QuickReplyTag.reply_id == reply.id))
    log_reply(session, reply, deleted=True)
    session.delete(reply)
    session.flush()


def _apply(session: Session, actor: Actor, reply: QuickReply, data: dict) -> None:
    """Check a reply's content against its level, then set it."""
    check_body(data["body"])
    category = None
    if data.get("category_id"):
        category = resolve_id(
            session, actor, ReplyCategory, data["category_id"], field="category_id"
        )
        if reply.level == "hq" and category.store_id is not None:
            raise InvalidInput(errors={"category_id": ["HQ replies go in HQ categories."]})
        if data.get("scene") and data["scene"] != category.scene:
            raise InvalidInput(
                errors={
                    "category_id": [
                        f"The category belongs to scene {category.scene}, not {data['scene']}."
                    ]
                }
            )
    scene = data.get("scene") or (category.scene if category else None)
    if not scene:
        raise InvalidInput(errors={"scene": ["Give a scene or a category."]})
    hq_tags = [Tag.store_id.is_(None)] if reply.level == "hq" else []
    tag_ids = resolve_ids(
        session, actor, Tag, data.get("tag_ids"), field="tag_ids", where=hq_tags, load=False
    )
    reply.scene, reply.category_id, reply.tag_ids = scene, data.get("category_id"), tag_ids
    reply.tagged = bool(tag_ids)
    reply.title, reply.body = data["title"], data["body"]


def _store_tags(session: Session, reply: QuickReply) -> None:
    session.execute(delete(QuickReplyTag).where(QuickReplyTag.reply_id == reply.id))
    if reply.tag_ids:
        session.execute(
            insert(QuickReplyTag),
            [
                {"reply_id": reply.id, "tag_id": t, "tenant_id": reply.tenant_id}
                for t in reply.tag_ids
            ],
        )


# --- rendering ---------------------------------------------------------------------------


def render_reply(session: Session, *, actor: Actor, reply_id: str, member_id: str) -> dict:
    """The reply's text for a member the caller can see; counts one use."""
    reply = get_reply(session, actor=actor, reply_id=reply_id)
    member = members.get_member(session, actor=actor, member_id=member_id, field="member_id")
    template = check_body(reply.body)
    values = placeholder_values(session, actor=actor, member=member, fields=template.fields)
    session.execute(
        update(QuickReply)
        .where(QuickReply.id == reply.id)
        .values(usage_count=QuickReply.usage_count + 1),
        execution_options={"synchronize_session": False},
    )
    return {
        "reply_id": reply.id,
        "member_id": member.id,
        "text": render.compose(template, values),
        "placeholders": [
            {"name": f, "value": values.get(f) or "", "missing": not values.get(f)}
            for f in template.fields
        ],
    }


# --- categories ------------------------------------------------------------------------


def list_categories(
    session: Session, *, actor: Actor, limit: int, cursor: str | None, scene: str | None = None
):
    stmt = policy.scoped_select(actor, ReplyCategory)
    if scene:
        stmt = stmt.where(ReplyCategory.scene == scene)
    return paginate(session, stmt, [ReplyCategory.id], limit=limit, cursor=cursor)


def create_category(session: Session, *, actor: Actor, data: dict) -> ReplyCategory:
    category = ReplyCategory(tenant_id=actor.tenant_id, store_id=actor.store_id, **data)
    policy.require_write(actor, category, "create")
    session.add(category)
    session.flush()
    log_change(
        session,
        tenant_id=category.tenant_id,
        table="reply_categories",
        record_id=category.id,
        scopes=category_scopes(category),
    )
    return category


def category_scopes(category: ReplyCategory) -> list[str]:
    if category.store_id is None:
        return [tenant_scope(category.tenant_id)]
    return [store_scope(category.store_id)]
