"""What the tasks domain announces or asks for; other domains answer (wired in
guideapp/wiring.py). The sender is always the SQLAlchemy session of the unit of work.
"""

from __future__ import annotations

from blinker import Namespace

tasks = Namespace()

scheduler_ticked = tasks.signal(
    "scheduler-ticked",
    doc="A scheduler tick ran for a tenant: time-based changes of other domains (materials "
    "opening or expiring, coupons issued on birthdays or expiring) happen and reach phones. "
    "kwargs: tenant_id, since (the previous tick's start or None), now, days ((first, "
    "today): the local days the tick went through, catch-up included; today again on the "
    "next tick). Receivers take **_ for kwargs added later.",
)
inbox_suggestions_requested = tasks.signal(
    "inbox-suggestions-requested",
    doc="An inbox page is being rendered. kwargs: actor, tasks (list of Task). Receivers "
    "return {task id: dict} of suggested content to embed (material, quick reply); the "
    "inbox merges the dicts per task.",
)
