"""Set-based task generation: campaign fan-out and the shared INSERT ... SELECT builders."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    String,
    and_,
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from guideapp.changelog import log_changes_from_select
from guideapp.changelog.scopes import STAFF, STORE, scope_column
from guideapp.db import UTCDateTime, bulk_work_memory, insert_from_select, utcnow
from guideapp.members.models import Member
from guideapp.org.models import Staff, Store
from guideapp.tasks.models import Campaign, Task, TaskTarget
from guideapp.members.segments import has_segment, segment_filter
from guideapp.tasks.targeting import target_stores

TASK_COLUMNS = [
    "id",
    "tenant_id",
    "store_id",
    "assignee_id",
    "source",
    "campaign_id",
    "sop_rule_id",
    "calendar_item_id",
    "dedupe_key",
    "title",
    "brief",
    "starts_at",
    "due_at",
    "suggested_material_id",
    "suggested_reply_id",
    "state",
    "created_by",
    "created_at",
    "updated_at",
]
TARGET_COLUMNS = ["id", "tenant_id", "task_id", "member_id", "updated_at"]


def _text(value):
    return literal(value, String) if value is not None else null()


def _time(value: datetime):
    return literal(value, UTCDateTime())


def task_row_select(
    *,
    tenant_id: str,
    source: str,
    key_prefix: str,
    id_prefix: str,
    store_id,
    assignee_id,
    owner_id,
    title: str,
    brief: str,
    starts_at,
    due_at,
    material_id=None,
    reply_id=None,
    campaign_id=None,
    sop_rule_id=None,
    calendar_item_id=None,
    created_by=None,
    now=None,
) -> list:
    """The SELECT list of a generated task, in TASK_COLUMNS order.

    `owner_id` (a column: guide or store id) makes both the id and the dedupe key unique.
    """
    now = now or utcnow()
    return [
        literal(id_prefix, String) + owner_id,
        literal(tenant_id, String),
        store_id,
        assignee_id if assignee_id is not None else null(),
        literal(source, String),
        _text(campaign_id),
        _text(sop_rule_id),
        _text(calendar_item_id),
        literal(key_prefix, String) + owner_id,
        literal(title, String),
        literal(brief, String),
        starts_at if not isinstance(starts_at, datetime) else _time(starts_at),
        due_at if not isinstance(due_at, datetime) else _time(due_at),
        _text(material_id),
        _text(reply_id),
        literal("open", String),
        _text(created_by),
        _time(now),
        _time(now),
    ]


def log_generated(session: Session, tenant_id: str, where: ColumnElement[bool]) -> None:
    """Change-log the tasks matching `where` in their store's and assignee's scopes; a pull
    sends a changed task's targets with it (sync/service.py IMPLIED), so 400,000 targets
    cost no rows here."""
    store_rows = select(Task.id, scope_column(STORE, Task.store_id)).where(where)
    guide_rows = select(Task.id, scope_column(STAFF, Task.assignee_id)).where(
        where, Task.assignee_id.is_not(None)
    )
    log_changes_from_select(
        session, tenant_id=tenant_id, table="tasks", rows=union_all(store_rows, guide_rows)
    )


def stores_to_publish(
    session: Session, campaign: Campaign, *, after: str | None = None, limit: int | None = None
) -> list[str]:
    """The campaign's target stores (by id, after `after`) that have none of its tasks yet:
    a publish is idempotent per (campaign, store), so a re-run skips stores already done."""
    stmt = target_stores(campaign.tenant_id, campaign.target).where(
        Store.id.not_in(select(Task.store_id).where(Task.campaign_id == campaign.id))
    )
    if after is not None:
        stmt = stmt.where(Store.id > after)
    stmt = stmt.order_by(Store.id)
    return list(session.scalars(stmt.limit(limit) if limit else stmt))


def publish_campaign(session: Session, campaign: Campaign, store_ids: list[str] | None = None):
    """Fan a campaign out to its stores' inboxes (or to `store_ids`, a batch of them that
    has none of its tasks yet) in two INSERT ... SELECTs.

    Each statement reads the segment's members once and derives task ids from their owner
    (campaign id + guide or store id), so the targets need no join back to the new tasks.
    The campaign row is locked by the caller, so each store is published once: plain
    INSERTs, without ON CONFLICT's second index probe per row.
    """
    now = utcnow()
    tenant_id = campaign.tenant_id
    bulk_work_memory(session)
    stores = target_stores(tenant_id, campaign.target)
    if store_ids is not None:
        stores = select(Store.id).where(Store.tenant_id == tenant_id, Store.id.in_(store_ids))
    segmented = has_segment(campaign.segment)
    per_guide = campaign.distribution == "auto"
    common: dict[str, Any] = dict(
        tenant_id=tenant_id,
        source="campaign",
        title=campaign.title,
        brief=campaign.brief,
        starts_at=campaign.starts_at,
        due_at=campaign.due_at,
        material_id=campaign.suggested_material_id,
        reply_id=campaign.suggested_reply_id,
        campaign_id=campaign.id,
        created_by=campaign.created_by,
        now=now,
        key_prefix=f"campaign:{campaign.id}:",
        id_prefix=campaign.id,
    )
    segment = and_(Member.tenant_id == tenant_id, segment_filter(campaign.segment, now))
    if per_guide:
        owner, member_owner = Staff.id, Member.guide_id
        owners = select(Staff.id).where(
            Staff.tenant_id == tenant_id,
            Staff.role == "guide",
            Staff.state == "active",
            Staff.store_id.in_(stores),
        )
        task_rows = select(
            *task_row_select(
                store_id=Staff.store_id, assignee_id=Staff.id, owner_id=Staff.id, **common
            )
        )
    else:
        owner, member_owner, owners = Store.id, Member.store_id, stores
        task_rows = select(
            *task_row_select(store_id=Store.id, assignee_id=None, owner_id=Store.id, **common)
        )
    task_rows = task_rows.where(owner.in_(owners))
    if segmented:  # no task for an owner none of whose members is in the segment
        # Grouped, the segment is one scan hashed against the owners, not a probe per owner.
        in_segment = select(member_owner.label("owner")).where(segment)
        if store_ids is not None:  # a batch: only its owners' members, not the whole segment
            in_segment = in_segment.where(member_owner.in_(owners))
        owners_in_segment = in_segment.group_by(member_owner).subquery()
        task_rows = task_rows.join(owners_in_segment, owners_in_segment.c.owner == owner)
    tasks = insert_from_select(session, Task, TASK_COLUMNS, task_rows.order_by(owner))
    targets = 0
    if segmented:
        task_id = literal(campaign.id, String) + member_owner
        # In primary-key order: the index pages fill in sequence instead of at random.
        target_id = (task_id + Member.id).label("id")
        rows = (
            select(target_id, literal(tenant_id, String), task_id, Member.id, _time(now))
            .where(segment, member_owner.in_(owners))
            .order_by(target_id)
        )
        targets = insert_from_select(session, TaskTarget, TARGET_COLUMNS, rows)
    published = Task.campaign_id == campaign.id
    if store_ids is not None:
        published = and_(published, Task.store_id.in_(store_ids))
    log_generated(session, tenant_id, published)
    return {"tasks": tasks, "targets": targets}


def cancel_open_tasks(session: Session, *, tenant_id: str, where) -> int:
    """Cancel open tasks matching `where`, set-based; phones drop them at their next pull."""
    cancelled = cast(
        CursorResult[Any],
        session.execute(
            update(Task)
            .where(Task.tenant_id == tenant_id, Task.state == "open", where)
            .values(state="cancelled", updated_at=utcnow())
        ),
    ).rowcount
    if cancelled:
        log_generated(
            session, tenant_id, and_(Task.tenant_id == tenant_id, Task.state == "cancelled", where)
        )
    return cancelled
