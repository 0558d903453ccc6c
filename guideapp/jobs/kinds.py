"""The named kinds of job and their handlers, registered by the domains that own them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Callable  # handler(ctx: JobContext) -> dict (the job's result)
    unit: str  # what progress counts: stores, months, rows...


KINDS: dict[str, JobKind] = {}

# Called after each unit of work commits, with the job's context: fn(ctx). Metrics and
# tests hook in here; a hook never changes what a job does.
UNIT_HOOKS: list[Callable] = []


def kind(name: str, *, unit: str = "items") -> Callable:
    """Register `handler(ctx) -> result` as the job kind `name`.

        @jobs.kind("campaign.publish", unit="stores")
        def publish(ctx): ...

    A handler does its work in `with ctx.unit() as session:` blocks: each is one
    transaction holding the work and the checkpoint that records it, so a job that dies
    runs again from its last checkpoint without doing anything twice.
    """

    def register(handler: Callable) -> Callable:
        KINDS[name] = JobKind(name=name, handler=handler, unit=unit)
        return handler

    return register
