"""What replicates to a phone: per table, its columns, its scopes and its sync filter."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Callable, Sequence, cast

from sqlalchemy import ColumnElement, and_, false, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.coupons.models import Coupon
from guideapp.coupons.service import with_templates
from guideapp.policy.actor import Actor
from guideapp.db import utcnow
from guideapp.materials.models import Material, MaterialCategory, Share
from guideapp.materials.service import currently_valid
from guideapp.members.models import Member, MemberNote, MemberTag, Order, Tag, TagGroup
from guideapp.replies.models import QuickReply, ReplyCategory
from guideapp.changelog import scopes_followed, staff_scope, store_scope
from guideapp.tasks.models import Task, TaskTarget


@dataclass(frozen=True)
class SyncTable:
    name: str
    model: type[Any]
    columns: tuple[str, ...]
    since_version: int = 1
    scopes: Callable[[Actor], list[str]] = field(default=lambda actor: [])
    extra_filter: Callable[[Actor], ColumnElement[bool]] | None = None
    # Columns a later schema version added: ((version, column), ...). A phone on an older
    # version gets the columns it knows (tables_for), so its schema keeps matching.
    added_columns: tuple[tuple[int, str], ...] = ()
    # Columns read from a row of another table (a coupon's template): `joined(session,
    # rows)` loads those rows for a whole page or chunk at once -> {row id: other row}.
    joined_columns: tuple[str, ...] = ()
    joined: Callable[[Session, Sequence[Any]], dict[str, Any]] | None = None

    def in_scope(self, actor: Actor) -> ColumnElement[bool]:
        """Rows this actor's phone holds: what the policy lets them read, narrowed for sync."""
        clause = policy.visible(actor, self.model)
        return and_(clause, self.extra_filter(actor)) if self.extra_filter else clause


# Phone users (require_phone_user) are store staff: the store_staff_have_store check.
def _own(actor: Actor) -> list[str]:
    return (
        [staff_scope(actor.staff_id)]
        if actor.is_guide
        else [store_scope(cast(str, actor.store_id))]
    )


def _store_and_own(actor: Actor) -> list[str]:
    return [store_scope(cast(str, actor.store_id)), staff_scope(actor.staff_id)]


def _shared(actor: Actor) -> list[str]:
    return scopes_followed(actor)


def members_on_phone(actor: Actor) -> ColumnElement[bool]:
    """A guide carries the cards of members bound to them; a manager the store's."""
    owner = (
        Member.guide_id == actor.staff_id if actor.is_guide else (Member.store_id == actor.store_id)
    )
    return and_(owner, Member.state == "active")


def _of_members(model):
    return lambda actor: model.member_id.in_(
        select(Member.id).where(policy.visible(actor, Member), members_on_phone(actor))
    )


def _tasks_on_phone(actor: Actor) -> ColumnElement[bool]:
    return Task.state != "cancelled"  # the manager's cancel wins: the phone drops it


def _coupons_on_phone(actor: Actor) -> ColumnElement[bool]:
    """The wallet a guide carries: usable coupons of their members. Used, withdrawn and
    expired ones come back as `deleted` (redemption, refunds and the expiry sweep log them)."""
    return and_(_of_members(Coupon)(actor), Coupon.state == "available", Coupon.valid_to > utcnow())


def _coupon_templates(session: Session, coupons: Sequence[Any]) -> dict[str, Any]:
    return {coupon.id: template for coupon, template in with_templates(session, coupons)}


TABLES: tuple[SyncTable, ...] = (
    SyncTable(
        "tasks",
        Task,
        (
            "id",
            "store_id",
            "assignee_id",
            "source",
            "campaign_id",
            "title",
            "brief",
            "starts_at",
            "due_at",
            "suggested_material_id",
            "suggested_reply_id",
            "state",
            "result",
            "note",
            "proof_url",
            "completed_at",
            "done_at_client",
            "updated_at",
        ),
        scopes=_store_and_own,
        extra_filter=_tasks_on_phone,
    ),
    SyncTable(
        "task_targets",
        TaskTarget,
        (
            "id",
            "task_id",
            "member_id",
            "result",
            "note",
            "result_at",
            "done_at_client",
            "updated_at",
        ),
        scopes=_store_and_own,
        extra_filter=lambda actor: TaskTarget.task_id.in_(
            select(Task.id).where(policy.visible(actor, Task), _tasks_on_phone(actor))
        ),
    ),
    SyncTable(
        "members",
        Member,
        (
            "id",
            "name",
            "phone",
            "unionid",
            "gender",
            "birthday",
            "tier",
            "stage",
            "source_channel",
            "joined_at",
            "guide_id",
            "store_id",
            "binding_locked_until",
            "first_order_at",
            "last_order_at",
            "last_contact_at",
            "updated_at",
        ),
        scopes=_own,
        extra_filter=members_on_phone,
    ),
    SyncTable(
        "member_tags",
        MemberTag,
        ("id", "member_id", "tag_id", "source", "created_at"),
        scopes=_own,
        extra_filter=_of_members(MemberTag),
    ),
    SyncTable("tag_groups", TagGroup, ("id", "name", "store_id", "updated_at"), scopes=_shared),
    SyncTable(
        "tags", Tag, ("id", "group_id", "store_id", "name", "code", "updated_at"), scopes=_shared
    ),
    SyncTable(
        "member_notes",
        MemberNote,
        ("id", "member_id", "author_id", "body", "noted_at", "created_at", "updated_at"),
        scopes=_own,
        extra_filter=_of_members(MemberNote),
    ),
    SyncTable(
        "orders",
        Order,
        (
            "id",
            "member_id",
            "channel",
            "order_no",
            "store_id",
            "amount_fen",
            "refunded_fen",
            "items",
            "ordered_at",
        ),
        scopes=_own,
        extra_filter=_of_members(Order),
        added_columns=((3, "coupon_discount_fen"),),
    ),
    SyncTable(
        "quick_replies",
        QuickReply,
        (
            "id",
            "level",
            "owner_store_id",
            "owner_staff_id",
            "scene",
            "category_id",
            "title",
            "body",
            "tag_ids",
            "usage_count",
            "version",
            "updated_at",
        ),
        since_version=2,
        scopes=_shared,
    ),
    SyncTable(
        "reply_categories",
        ReplyCategory,
        ("id", "store_id", "scene", "name", "position", "updated_at"),
        since_version=2,
        scopes=_shared,
    ),
    SyncTable(
        "materials",
        Material,
        (
            "id",
            "kind",
            "title",
            "body",
            "url",
            "cover_url",
            "upload_id",
            "category_id",
            "tags",
            "level",
            "valid_from",
            "valid_to",
            "updated_at",
        ),
        since_version=2,
        scopes=_shared,
        extra_filter=lambda actor: currently_valid(utcnow()),
    ),
    SyncTable(
        "material_categories",
        MaterialCategory,
        ("id", "parent_id", "name", "position", "updated_at"),
        since_version=2,
        scopes=_shared,
    ),
    # Push-only events: phones send shares, never receive them.
    SyncTable(
        "shares",
        Share,
        ("id", "material_id", "member_id", "channel", "shared_at"),
        since_version=2,
        extra_filter=lambda actor: false(),
    ),
    # Version 3: the members' wallets. A coupon carries what its template promises (fixed
    # once issued) and its name and text (a change logs the template's coupons again), so
    # the phone shows it without a table of templates it may not all be able to see.
    SyncTable(
        "coupons",
        Coupon,
        (
            "id",
            "member_id",
            "template_id",
            "template_version",
            "code",
            "state",
            "valid_from",
            "valid_to",
            "source",
            "issued_by",
            "task_id",
            "campaign_id",
            "issued_at",
            "updated_at",
        ),
        since_version=3,
        scopes=_own,
        extra_filter=_coupons_on_phone,
        joined_columns=(
            "name",
            "kind",
            "amount_off_fen",
            "percent_off_bp",
            "max_discount_fen",
            "gift_item",
            "threshold_fen",
            "stackable",
            "description",
        ),
        joined=_coupon_templates,
    ),
)
BY_NAME = {table.name: table for table in TABLES}
SCHEMA_VERSION = max(  # the newest version this server serves
    [t.since_version for t in TABLES] + [v for t in TABLES for v, _ in t.added_columns]
)


def tables_for(schema_version: int) -> list[SyncTable]:
    """The tables a phone on `schema_version` holds, each with the columns it knows."""
    return [
        replace(t, columns=t.columns + tuple(c for v, c in t.added_columns if v <= schema_version))
        if t.added_columns
        else t
        for t in TABLES
        if t.since_version <= schema_version
    ]


def raw_records(session: Session, table: SyncTable, rows: Sequence[Any]) -> list[dict]:
    """WatermelonDB raw records: flat, snake_case, times as integer milliseconds; joined
    columns loaded once for all `rows`."""
    other = table.joined(session, rows) if table.joined and rows else {}
    return [_record(table, row, other.get(row.id)) for row in rows]


def _record(table: SyncTable, row, other) -> dict:
    record = {column: _raw(getattr(row, column)) for column in table.columns}
    for column in table.joined_columns:
        record[column] = _raw(getattr(other, column, None))
    return record


def _raw(value):
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value
