"""Task use cases: campaigns, store tasks, assignment, claiming, results, completion."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.references import resolve_id, resolve_ids
from guideapp.policy.actor import Actor
from guideapp.db import new_id, utcnow
from guideapp.errors import InvalidInput, InvalidState
from guideapp.members.models import Member
from guideapp.org.models import Staff, Store
from guideapp.pagination import paginate
from guideapp.changelog import log_change, staff_scope, store_scope
from guideapp.tasks import fanout, publishing
from guideapp.members.segments import check_segment
from guideapp.tasks.references import check_suggestions, check_target
from guideapp.tasks.models import Campaign, Task, TaskTarget


def task_scopes(task: Task) -> list[str]:
    scopes = [store_scope(task.store_id)]
    if task.assignee_id:
        scopes.append(staff_scope(task.assignee_id))
    return scopes


def log_task(session: Session, task: Task, old_scopes=(), with_targets=False) -> None:
    scopes = {*old_scopes, *task_scopes(task)}
    log_change(session, tenant_id=task.tenant_id, table="tasks", record_id=task.id, scopes=scopes)
    if with_targets:
        for target_id in session.scalars(
            select(TaskTarget.id).where(TaskTarget.task_id == task.id)
        ):
            log_change(
                session,
                tenant_id=task.tenant_id,
                table="task_targets",
                record_id=target_id,
                scopes=scopes,
            )


# --- campaigns -------------------------------------------------------------------


def create_campaign(session: Session, *, actor: Actor, data: dict) -> Campaign:
    _check_window(data["starts_at"], data["due_at"])
    campaign = Campaign(tenant_id=actor.tenant_id, created_by=actor.staff_id, **data)
    policy.require_write(actor, campaign, "create")
    check_target(session, actor, data["target"])
    check_segment(session, actor, data.get("segment") or {})
    check_suggestions(session, actor, data)
    session.add(campaign)
    session.flush()
    return campaign


def list_campaigns(session: Session, *, actor: Actor, limit: int, cursor: str | None):
    return paginate(
        session, policy.scoped_select(actor, Campaign), [Campaign.id], limit=limit, cursor=cursor
    )


def get_campaign(session: Session, *, actor: Actor, campaign_id: str) -> Campaign:
    return policy.get_visible(session, actor, Campaign, campaign_id, label="Campaign")


# Publishing runs as a job (guideapp/tasks/publishing.py); `publish` is the synchronous one.
publish = publishing.publish
start_publish = publishing.start_publish


def cancel_campaign(session: Session, *, actor: Actor, campaign_id: str) -> dict:
    campaign = policy.get_writable(session, actor, Campaign, campaign_id, "cancel", for_update=True)
    if campaign.state == "cancelled":
        raise InvalidState("Campaign is already cancelled.")
    cancelled = fanout.cancel_open_tasks(
        session, tenant_id=campaign.tenant_id, where=Task.campaign_id == campaign.id
    )
    campaign.state, campaign.cancelled_at = "cancelled", utcnow()
    session.flush()
    return {"campaign_id": campaign.id, "state": campaign.state, "tasks": cancelled, "targets": 0}


# --- store tasks ---------------------------------------------------------------------


def create_store_task(session: Session, *, actor: Actor, data: dict) -> list[Task]:
    """A manager's task: one per named guide, or one claimable by any guide of the store."""
    _check_window(data["starts_at"], data["due_at"])
    store_id = data.get("store_id") or (None if actor.is_hq else actor.store_id)
    if not store_id:
        raise InvalidInput(errors={"store_id": ["HQ must name the store."]})
    resolve_id(session, actor, Store, store_id, field="store_id")
    policy.require_write(actor, Task(tenant_id=actor.tenant_id, store_id=store_id), "create")
    check_suggestions(session, actor, data)
    assignees = resolve_ids(
        session,
        actor,
        Staff,
        data.get("assignee_ids"),
        field="assignee_ids",
        what="active guide of the store",
        where=[Staff.store_id == store_id, Staff.role == "guide", Staff.state == "active"],
        load=False,
    ) or [None]
    members = resolve_ids(
        session,
        actor,
        Member,
        data.get("member_ids"),
        field="member_ids",
        what="member of the store",
        where=[Member.store_id == store_id],
    )
    group = new_id()
    tasks = []
    for assignee in assignees:
        task = Task(
            tenant_id=actor.tenant_id,
            store_id=store_id,
            assignee_id=assignee,
            source="store",
            dedupe_key=f"store:{group}:{assignee or 'store'}",
            title=data["title"],
            brief=data.get("brief", ""),
            starts_at=data["starts_at"],
            due_at=data["due_at"],
            suggested_material_id=data.get("suggested_material_id"),
            suggested_reply_id=data.get("suggested_reply_id"),
            created_by=actor.staff_id,
        )
        policy.require_write(actor, task, "create")
        session.add(task)
        session.flush()
        for member in members:
            session.add(
                TaskTarget(
                    id=task.id + member.id,
                    tenant_id=task.tenant_id,
                    task_id=task.id,
                    member_id=member.id,
                )
            )
        session.flush()
        log_task(session, task, with_targets=True)
        tasks.append(task)
    return tasks


def add_event_task(
    session: Session,
    *,
    tenant_id: str,
    store_id: str,
    assignee_id: str | None,
    source: str,
    dedupe_key: str,
    title: str,
    brief: str,
    starts_at: datetime,
    due_at: datetime,
    member_ids: list[str] = (),  # type: ignore[assignment]
) -> tuple[Task, bool]:
    """A single task something that happened asks of one person (a customer to greet, a
    risk for the manager): no actor, since no person created it. Once per `dedupe_key`:
    (the task, True) when made now, (the task made before, False) for a repeat."""
    _check_window(starts_at, due_at)
    existing = session.scalar(
        select(Task).where(Task.tenant_id == tenant_id, Task.dedupe_key == dedupe_key)
    )
    if existing is not None:
        return existing, False
    task = Task(
        tenant_id=tenant_id,
        store_id=store_id,
        assignee_id=assignee_id,
        source=source,
        dedupe_key=dedupe_key,
        title=title[:120],
        brief=brief,
        starts_at=starts_at,
        due_at=due_at,
    )
    session.add(task)
    session.flush()
    for member_id in dict.fromkeys(member_ids):
        session.add(
            TaskTarget(
                id=task.id + member_id, tenant_id=tenant_id, task_id=task.id, member_id=member_id
            )
        )
    session.flush()
    log_task(session, task, with_targets=True)
    return task, True


def get_task(session: Session, *, actor: Actor, task_id: str, action: str | None = None):
    task = policy.get_visible(session, actor, Task, task_id, label="Task")
    if action:
        policy.require_write(actor, task, action)
    return task


def assign(session: Session, *, actor: Actor, task_id: str, guide_id: str | None) -> Task:
    """Managers hand a task to a guide (or back to the store); guides claim store tasks."""
    task = get_task(session, actor=actor, task_id=task_id)
    claiming = actor.is_guide
    policy.require_write(actor, task, "claim" if claiming else "assign")
    if claiming and guide_id != actor.staff_id:
        raise InvalidInput(errors={"guide_id": ["Guides can only claim tasks for themselves."]})
    _require_open(task)
    resolve_id(
        session,
        actor,
        Staff,
        guide_id,
        field="guide_id",
        what="active guide of the task's store",
        where=[Staff.role == "guide", Staff.state == "active", Staff.store_id == task.store_id],
    )
    old = task_scopes(task)
    task.assignee_id, task.updated_at = guide_id, utcnow()
    session.flush()
    log_task(session, task, old_scopes=old, with_targets=True)
    return task


def record_result(
    session: Session,
    *,
    actor: Actor,
    task_id: str,
    member_id: str,
    result: str,
    note: str | None,
    done_at: datetime | None,
) -> TaskTarget:
    task = get_task(session, actor=actor, task_id=task_id, action="result")
    _require_open(task)
    target = session.scalar(
        select(TaskTarget).where(TaskTarget.task_id == task.id, TaskTarget.member_id == member_id)
    )
    if target is None:
        raise InvalidInput(errors={"member_id": ["This member is not a target of the task."]})
    target.result, target.note, target.done_at_client = result, note, done_at
    target.result_at, target.result_by, target.updated_at = utcnow(), actor.staff_id, utcnow()
    session.flush()
    log_change(
        session,
        tenant_id=task.tenant_id,
        table="task_targets",
        record_id=target.id,
        scopes=task_scopes(task),
    )
    return target


def complete(
    session: Session,
    *,
    actor: Actor,
    task_id: str,
    result: str,
    note: str | None,
    proof_url: str | None,
    done_at: datetime | None,
) -> Task:
    task = get_task(session, actor=actor, task_id=task_id, action="complete")
    _require_open(task)
    now = utcnow()
    task.state, task.result, task.note, task.proof_url = "done", result, note, proof_url
    task.completed_at, task.completed_by, task.done_at_client = now, actor.staff_id, done_at
    task.updated_at = now
    session.flush()
    log_task(session, task)
    return task


def cancel(session: Session, *, actor: Actor, task_id: str) -> Task:
    task = get_task(session, actor=actor, task_id=task_id, action="cancel")
    _require_open(task)
    task.state, task.updated_at = "cancelled", utcnow()
    session.flush()
    log_task(session, task, with_targets=True)
    return task


def _require_open(task: Task) -> None:
    if task.state != "open":
        raise InvalidState(f"The task is {task.state}.")


def _check_window(starts_at: datetime, due_at: datetime) -> None:
    if due_at <= starts_at:
        raise InvalidInput(errors={"due_at": ["The due time must come after the start."]})
