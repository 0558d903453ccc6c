"""Completion and conversion per campaign x region x store x guide, as rows for charts."""

from __future__ import annotations

from sqlalchemy import and_, case, distinct, func, literal, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.db import plus_days, utcnow
from guideapp.members.models import Order
from guideapp.org.models import Region, Staff, Store
from guideapp.tasks.models import Task, TaskTarget

GROUPINGS = ("campaign", "region", "store", "guide")


def task_dashboard(
    session: Session,
    *,
    actor: Actor,
    group_by: str,
    campaign_id: str | None = None,
    conversion_days: int = 7,
) -> list[dict]:
    """Rows of {key, label, tasks, done, overdue, completion_rate, targets, answered,
    converted, conversion_rate}; a target converts when its member orders within
    `conversion_days` after the guide's result."""
    now = utcnow()
    key, label = {
        "campaign": (Task.campaign_id, Task.title),
        "region": (Store.region_id, Region.name),
        "store": (Task.store_id, Store.name),
        "guide": (Task.assignee_id, Staff.name),
    }[group_by]
    scoped = and_(
        policy.visible(actor, Task),
        Task.state != "cancelled",
        Task.campaign_id == campaign_id if campaign_id else literal(True),
    )
    joins = (
        select(
            key.label("key"),
            func.max(label).label("label"),
            func.count(distinct(Task.id)).label("tasks"),
            func.count(distinct(case((Task.state == "done", Task.id)))).label("done"),
            func.count(
                distinct(case((and_(Task.state == "open", Task.due_at < now), Task.id)))
            ).label("overdue"),
        )
        .select_from(Task)
        .join(Store, Store.id == Task.store_id)
        .join(Region, Region.id == Store.region_id)
        .outerjoin(Staff, Staff.id == Task.assignee_id)
        .where(scoped)
        .group_by(key)
    )
    rows = {r.key: dict(r._mapping) for r in session.execute(joins)}
    converted = Order.member_id == TaskTarget.member_id
    window = and_(
        converted,
        Order.ordered_at >= TaskTarget.result_at,
        Order.ordered_at <= plus_days(session, TaskTarget.result_at, conversion_days),
    )
    targets = (
        select(
            key.label("key"),
            func.count(TaskTarget.id).label("targets"),
            func.count(TaskTarget.result).label("answered"),
            func.count(
                distinct(case((select(Order.id).where(window).exists(), TaskTarget.id)))
            ).label("converted"),
        )
        .select_from(TaskTarget)
        .join(Task, Task.id == TaskTarget.task_id)
        .join(Store, Store.id == Task.store_id)
        .where(scoped)
        .group_by(key)
    )
    for r in session.execute(targets):
        rows.setdefault(
            r.key, {"key": r.key, "label": None, "tasks": 0, "done": 0, "overdue": 0}
        ).update(r._mapping)
    result = []
    for row in rows.values():
        row.setdefault("targets", 0), row.setdefault("answered", 0)
        row.setdefault("converted", 0)
        row["completion_rate"] = round(row["done"] / row["tasks"], 4) if row["tasks"] else 0.0
        row["conversion_rate"] = (
            round(row["converted"] / row["answered"], 4) if row["answered"] else 0.0
        )
        result.append(row)
    return sorted(result, key=lambda r: (str(r["label"]), str(r["key"])))
