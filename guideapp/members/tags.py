"""Tag groups and tags (HQ and store level), tagging members, questionnaire code books."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.references import resolve_id
from guideapp.policy.actor import Actor
from guideapp.errors import Conflict, InvalidInput
from guideapp.members.identity import log_member
from guideapp.members.models import Member, MemberTag, QuestionnaireCode, Tag, TagGroup
from guideapp.changelog import log_change, store_scope, tenant_scope


def _tag_scopes(tenant_id: str, store_id: str | None) -> list[str]:
    return [store_scope(store_id)] if store_id else [tenant_scope(tenant_id)]


def create_group(session: Session, *, actor: Actor, name: str, store_level: bool) -> TagGroup:
    group = TagGroup(
        tenant_id=actor.tenant_id, name=name, store_id=actor.store_id if store_level else None
    )
    policy.require_write(actor, group, "create")
    _ensure_group_name_free(session, group)
    session.add(group)
    session.flush()
    log_change(
        session,
        tenant_id=group.tenant_id,
        table="tag_groups",
        record_id=group.id,
        scopes=_tag_scopes(group.tenant_id, group.store_id),
    )
    return group


def _ensure_group_name_free(session: Session, group: TagGroup) -> None:
    """A name is taken by an HQ group, or by a group of the same store: one card, one heading."""
    levels: ColumnElement[bool] = TagGroup.store_id.is_(None)
    if group.store_id:
        levels = or_(levels, TagGroup.store_id == group.store_id)
    taken = session.scalar(
        select(TagGroup.id).where(
            TagGroup.tenant_id == group.tenant_id, TagGroup.name == group.name, levels
        )
    )
    if taken:
        raise Conflict(
            f"Tag group {group.name} already exists.", errors={"name": ["Already used."]}
        )


def create_tag(
    session: Session, *, actor: Actor, group_id: str, name: str, code: str | None
) -> Tag:
    group = policy.get_visible(session, actor, TagGroup, group_id, label="Tag group")
    tag = Tag(
        tenant_id=actor.tenant_id,
        group_id=group.id,
        name=name,
        code=code,
        store_id=group.store_id if group.store_id else (None if actor.is_hq else actor.store_id),
    )
    policy.require_write(actor, tag, "create")
    if session.scalar(select(Tag.id).where(Tag.group_id == group.id, Tag.name == name)):
        raise Conflict(f"Tag {name} already exists in this group.", errors={"name": ["Taken."]})
    session.add(tag)
    session.flush()
    log_change(
        session,
        tenant_id=tag.tenant_id,
        table="tags",
        record_id=tag.id,
        scopes=_tag_scopes(tag.tenant_id, tag.store_id),
    )
    return tag


def tag_member(
    session: Session,
    *,
    actor: Actor | None,
    member: Member,
    tag: Tag,
    source: str = "manual",
    source_ref: str | None = None,
    record_id: str | None = None,
) -> tuple[MemberTag, bool]:
    """Idempotent: a tag already on the member is returned, not added twice."""
    if tag.tenant_id != member.tenant_id:
        raise InvalidInput(errors={"tag_id": ["No such tag."]})
    existing = session.scalar(
        select(MemberTag).where(MemberTag.member_id == member.id, MemberTag.tag_id == tag.id)
    )
    if existing is not None:
        return existing, False
    row = MemberTag(
        tenant_id=member.tenant_id,
        member_id=member.id,
        tag_id=tag.id,
        source=source,
        source_ref=source_ref,
        tagged_by=actor.staff_id if actor else None,
    )
    if record_id:
        row.id = record_id
    session.add(row)
    session.flush()
    log_member(session, member, table="member_tags", record_id=row.id)
    return row, True


def untag_member(session: Session, *, member: Member, tag_id: str) -> bool:
    row = session.scalar(
        select(MemberTag).where(MemberTag.member_id == member.id, MemberTag.tag_id == tag_id)
    )
    if row is None:
        return False
    session.delete(row)
    session.flush()
    log_member(session, member, table="member_tags", record_id=row.id, deleted=True)
    return True


def apply_questionnaire(
    session: Session,
    *,
    actor: Actor | None,
    member: Member,
    questionnaire: str,
    answers: dict[str, str],
) -> list[Tag]:
    """Map each answer through the code book (e.g. question skin, answer '3' -> acne)."""
    codes = session.execute(
        select(QuestionnaireCode.question, QuestionnaireCode.answer, Tag)
        .join(Tag, Tag.id == QuestionnaireCode.tag_id)
        .where(
            QuestionnaireCode.tenant_id == member.tenant_id,
            QuestionnaireCode.questionnaire == questionnaire,
        )
    ).all()
    book = {(q, a): tag for q, a, tag in codes}
    unknown = {
        q: [f"Answer {a!r} is not in the code book."]
        for q, a in answers.items()
        if (q, str(a)) not in book
    }
    if unknown:
        raise InvalidInput(
            "Some answers are not in the questionnaire's code book.", errors={"answers": unknown}
        )
    applied = []
    for question, answer in answers.items():
        tag = book[(question, str(answer))]
        tag_member(
            session,
            actor=actor,
            member=member,
            tag=tag,
            source="questionnaire",
            source_ref=f"{questionnaire}:{question}={answer}",
        )
        applied.append(tag)
    return applied


def add_code(
    session: Session, *, actor: Actor, questionnaire: str, question: str, answer: str, tag_id: str
) -> QuestionnaireCode:
    tag = resolve_id(session, actor, Tag, tag_id, field="tag_id")
    code = QuestionnaireCode(
        tenant_id=actor.tenant_id,
        questionnaire=questionnaire,
        question=question,
        answer=answer,
        tag_id=tag.id,
    )
    policy.require_write(actor, code, "create")
    session.add(code)
    session.flush()
    return code
