"""Who sees and changes tasks, their targets and HQ's plans (campaigns, SOP rules, calendar)."""

from sqlalchemy import select

from guideapp import policy
from guideapp.tasks.models import CalendarItem, Campaign, SopRule, Task, TaskTarget


# A guide's inbox: their own tasks and the store's unassigned (claimable) ones.
_tasks = policy.own_or_store_pool(Task.store_id, Task.assignee_id)


def _task_writes(actor, task, action):
    if actor.is_hq:
        return True
    if actor.is_manager:
        return task.store_id == actor.store_id
    if action == "claim":
        return task.store_id == actor.store_id and task.assignee_id is None
    return task.assignee_id == actor.staff_id and action in {"result", "complete"}


def _task_targets(actor):
    return TaskTarget.task_id.in_(select(Task.id).where(policy.visible(actor, Task)))


def register() -> None:
    policy.register_rules(Task, read=_tasks, write=_task_writes)
    policy.register_rules(TaskTarget, read=_task_targets)
    for model in (Campaign, SopRule, CalendarItem):
        # HQ plans; managers and guides see the plan only through the tasks it makes.
        policy.register_rules(model, read=policy.hq_reads, write=policy.hq_writes)
