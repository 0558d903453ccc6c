"""Processing the stored WeCom events, exactly once each, from the durable table.

One job kind, `wecom.events`, drains a tenant's due events (guideapp/jobs: the same queue,
workers and recovery as every long job; `flask --app wsgi wecom work` runs it in-process).
Each event is one unit of work: its effects and its `done` are one transaction, so a
process killed at any point leaves the event pending with none of its effects, and it is
processed again; two drains never both apply it (the claim below locks its row).

A failure rolls the event's work back and is recorded in a unit of its own: the event
waits `event_retry_s` doubled per attempt (up to an hour; a WeCom frequency limit is one
such failure) and is dead after `event_max_attempts`: kept, listed and replayable by HQ
(`GET /api/v1/wecom/events?state=dead`, `POST .../replay`, `flask wecom events --dead`).

Handlers are registered per (Event, ChangeType) by the modules that own the effects
(`@handles("change_external_contact", "add_external_contact")`); an event nobody handles
is kept as `ignored`.
"""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta
from typing import Any, Callable, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from guideapp import jobs, policy
from guideapp.db import utcnow
from guideapp.errors import DomainError, InvalidState
from guideapp.pagination import paginate
from guideapp.wecom.models import WecomEvent
from guideapp.wecom.service import settings_of

log = logging.getLogger(__name__)

KIND = "wecom.events"
BATCH = 200  # event ids read per round of a drain
MAX_RETRY_S = 3600.0

Handler = Callable[[Session, WecomEvent], "dict[str, Any] | None"]
HANDLERS: dict[tuple[str, str | None], Handler] = {}


def handles(event: str, change_type: str | None = None) -> Callable[[Handler], Handler]:
    """Register `handler(session, event) -> result` for WeCom's Event (and ChangeType)."""

    def register(handler: Handler) -> Handler:
        HANDLERS[event, change_type] = handler
        return handler

    return register


def wake(session: Session, tenant_id: str, *, delay: float | None = None) -> None:
    """See that a drain of the tenant's events is due (now, or in `delay` s)."""
    jobs.ensure_due(session, tenant_id=tenant_id, kind=KIND, delay=delay)


@jobs.kind(KIND, unit="events")
def drain(ctx: jobs.JobContext) -> dict:
    counts = {"done": 0, "ignored": 0, "failed": 0}
    seen: set[str] = set()
    while True:
        with ctx.reading() as session:
            due = session.scalars(
                select(WecomEvent.id)
                .where(
                    WecomEvent.tenant_id == ctx.tenant_id,
                    WecomEvent.state == "pending",
                    WecomEvent.next_attempt_at <= utcnow(),
                )
                .order_by(WecomEvent.received_at, WecomEvent.id)
                .limit(BATCH)
            ).all()
        due = [event_id for event_id in due if event_id not in seen]
        if not due:
            break
        for event_id in due:
            seen.add(event_id)
            try:
                with ctx.unit() as session:
                    state = process(session, event_id)
                    ctx.progress(ctx.done + 1)
                if state:
                    counts[state] += 1
            except jobs.STOPS:
                raise
            except Exception as error:
                if jobs.is_transient(error):
                    raise  # the database: the job retries, the event is untouched
                with ctx.unit() as session:
                    fail(session, event_id, error)
                    ctx.progress(ctx.done + 1)
                counts["failed"] += 1
    with ctx.unit() as session:  # events waiting for a retry: a drain when the first is due
        first = session.scalar(
            select(func.min(WecomEvent.next_attempt_at)).where(
                WecomEvent.tenant_id == ctx.tenant_id, WecomEvent.state == "pending"
            )
        )
        if first is not None:
            wake(session, ctx.tenant_id, delay=max((first - utcnow()).total_seconds(), 1.0))
    return counts


def process(session: Session, event_id: str) -> str | None:
    """Apply one pending event; its new state, or None when it was not pending (another
    drain did it, or HQ replayed it meanwhile)."""
    # The claim: an UPDATE that changes nothing but locks the row (PostgreSQL) or takes
    # the write lock (SQLite) until this unit commits; a second drain waits here, then
    # finds the event done.
    claimed = cast(
        CursorResult[Any],
        session.execute(
            update(WecomEvent)
            .where(WecomEvent.id == event_id, WecomEvent.state == "pending")
            .values(state="pending"),
            execution_options={"preserve_rowcount": True},
        ),
    ).rowcount
    if not claimed:
        return None
    event = session.get_one(WecomEvent, event_id, populate_existing=True)
    handler = HANDLERS.get((event.event, event.change_type)) or HANDLERS.get((event.event, None))
    if handler is None:
        event.state = "ignored"
        event.result = {"ignored": f"no handler for {event.event}/{event.change_type}"}
    else:
        event.result = handler(session, event) or {}
        event.state = "done"
    event.processed_at = utcnow()
    event.error = None
    return event.state


def fail(session: Session, event_id: str, error: Exception) -> None:
    """Record a failed attempt: retry later with backoff, or dead after the last one."""
    event = session.get(WecomEvent, event_id, with_for_update=True, populate_existing=True)
    if event is None or event.state != "pending":
        return
    settings = settings_of(session)
    event.attempts += 1
    event.error = _message(error)
    event.error_detail = "".join(
        traceback.format_exception(type(error), error, error.__traceback__)
    )
    if event.attempts >= settings.event_max_attempts:
        event.state = "dead"
        log.error(
            "wecom event dead",
            extra={"wecom_event": event.id, "attempts": event.attempts, "error": event.error},
        )
        return
    wait = min(settings.event_retry_s * 2 ** (event.attempts - 1), MAX_RETRY_S)
    event.next_attempt_at = utcnow() + timedelta(seconds=wait)
    log.warning(
        "wecom event failed; retrying",
        extra={"wecom_event": event.id, "attempts": event.attempts, "retry_in_s": wait},
    )


def _message(error: Exception) -> str:
    if isinstance(error, DomainError):
        return error.message
    return f"Processing failed on our side ({type(error).__name__}); the traceback is logged."


# --- HQ: inspect and replay -------------------------------------------------------------


def list_events(session: Session, *, actor, state=None, event=None, cursor=None, limit=50):
    policy.require(actor, "configure_wecom")
    stmt = select(WecomEvent).where(policy.visible(actor, WecomEvent))
    if state:
        stmt = stmt.where(WecomEvent.state == state)
    if event:
        stmt = stmt.where((WecomEvent.event == event) | (WecomEvent.change_type == event))
    keys = [WecomEvent.received_at, WecomEvent.id]
    return paginate(session, stmt, keys, cursor=cursor, limit=limit, descending=True)


def get_event(session: Session, *, actor, event_id: str) -> WecomEvent:
    """HQ's own tenant's event; anyone else: 404, as for an id that does not exist."""
    return policy.get_visible(session, actor, WecomEvent, event_id)


def replay(session: Session, *, actor, event_id: str) -> WecomEvent:
    """A dead event gets its attempts back and is processed again now."""
    event = get_event(session, actor=actor, event_id=event_id)
    if event.state != "dead":
        raise InvalidState(
            f"Only a dead event can be replayed; this one is {event.state}.",
            errors={"state": [event.state]},
        )
    requeue(session, event)
    return event


def requeue(session: Session, event: WecomEvent) -> None:
    event.state, event.attempts, event.error = "pending", 0, None
    event.next_attempt_at = utcnow()
    session.flush()
    wake(session, event.tenant_id)


def counts_by_state(session: Session) -> dict[str, int]:
    """Events per state, every tenant (metrics)."""
    rows = session.execute(select(WecomEvent.state, func.count()).group_by(WecomEvent.state))
    return {state: int(n) for state, n in rows}
