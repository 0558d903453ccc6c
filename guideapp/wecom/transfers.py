"""Customers handed over in WeCom when our books hand members over (issue 17, part 4).

When members move between guides (a guide signs off with a successor, or HQ / a manager
moves them: both end in members.members_transferred), the receiver below records one
WecomTransfer per (member, WeCom relationship of the old guide) as `pending` and wakes the
`wecom.transfers` job; the HR request itself never calls WeCom.

The job, one per tenant at a time that matters (see `wake`):
1. sends the due pending transfers, at most 100 customers per call (WeCom's limit), with
   `externalcontact/resigned/transfer_customer` when the handover guide has left and
   `externalcontact/transfer_customer` only for a guide still in service (the in-service
   API must never be used for a departed guide: WeCom then treats the customers as moved
   by the guide, and the 90-day limit of two moves counts against them). WeCom answers per
   customer: 0 means "the takeover starts" (`waiting`), anything else fails that customer.
   A busy or rate-limited WeCom (45033, 45009, -1) or a handover member WeCom does not know
   as resigned yet (40097: HQ signs them off in WeCom after us) is asked again later,
   waiting `transfer_retry_s` doubled per attempt, and failed after the last attempt;
2. polls `transfer_result` / `resigned/transfer_result` (paged by cursor) for the waiting
   ones: status 1 succeeded, 2 still waiting, 3 customer refused, 4 the takeover guide is
   at their customer limit, 5 no record (so is a customer the result never lists two days
   after we asked);
3. wakes itself again: when the first busy retry is due, or `transfer_poll_s` later while
   any customer is waiting. `flask --app wsgi wecom transfers` runs it now, in-process.

Our books follow WeCom's outcome. Succeeded: the old guide's WecomContact becomes
`transferred` and the takeover guide gets an active one. Failed (polled, or WeCom's
`transfer_fail` callback, handled below the same way): the customer stays with the old
guide in WeCom, so the member goes back to them in our books through the members binding
service (`transfer_members(..., returning=True)`: a new binding row, the change log, and
members_transferred, so the open tasks about those members go back with them and future
commissions follow the binding), even when the old guide has left since: a departed
guide's customer WeCom kept is where a sign-off without successor leaves one, for the
manager to hand on. That move back mirrors WeCom and asks WeCom for nothing (ECHO).

A successor without a WeCom user id cannot take customers over: those transfers fail at
once (`takeover_not_in_wecom`) and the books keep HR's decision.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from guideapp import jobs, policy
from guideapp.db import new_id, upsert, utcnow
from guideapp.errors import DomainError
from guideapp.members.binding import transfer_members
from guideapp.members.models import Binding, Member
from guideapp.org.models import Staff
from guideapp.pagination import paginate
from guideapp.wecom.clients import WecomNotConfigured, WecomRefused, WecomUnavailable
from guideapp.wecom.events import handles
from guideapp.wecom.models import WecomContact, WecomEvent, WecomTransfer
from guideapp.wecom.service import contact_client, settings_of

log = logging.getLogger(__name__)

KIND = "wecom.transfers"
BATCH = 100  # transfer_customer: "每次最多分配100个客户"
CHUNK = 1000  # ids per IN (...) when reading the moved members' relationships
NO_RECORD_AFTER = timedelta(days=2)  # WeCom takes over after 24 h; a day's margin
MAX_RETRY_S = 3600.0
ECHO = "wecom.transfers.echo"  # session.info: a move back that mirrors WeCom

# Retried later, not failed: WeCom cannot take it now (busy, rate limits), or does not know
# yet that the handover member left ("转出用户必须已经离职": HQ removes them in WeCom later).
NOT_YET = {40097}
OPEN = ("pending", "waiting")
TRANSFER_PATH = {  # 在职继承 (in service) / 离职继承 (departed): never the first for a leaver
    "onjob": "externalcontact/transfer_customer",
    "resigned": "externalcontact/resigned/transfer_customer",
}
RESULT_PATH = {
    "onjob": "externalcontact/transfer_result",
    "resigned": "externalcontact/resigned/transfer_result",
}
# transfer_result status -> our failure reason (1 succeeded, 2 waiting).
FAILED_STATUS = {3: "customer_refused", 4: "customer_limit_exceed", 5: "no_record"}
FAILURE_WORDS = {
    "customer_refused": "The customer declined the new guide in WeCom.",
    "customer_limit_exceed": "The new guide has reached WeCom's customer limit.",
    "no_record": "WeCom has no record of this transfer.",
    "takeover_not_in_wecom": "The new guide has no WeCom user id (set it on the staff record).",
    "withdrawn": "The member went back to the first guide before WeCom was asked.",
}


# --- requests: from our books -------------------------------------------------------------


def on_members_transferred(
    session: Session,
    *,
    tenant_id: str,
    member_ids: list[str],
    from_guide,
    to_guide,
    now: datetime | None = None,
    **_ignored,
) -> None:
    """members.members_transferred: the old guide's WeCom customers among the moved
    members are to be handed to the new guide in WeCom too (by the job, after commit)."""
    if session.info.get(ECHO):
        return
    now = now or utcnow()
    rerouted = _reroute(
        session, tenant_id, member_ids, from_guide=from_guide, to_guide=to_guide, now=now
    )
    rows: list[dict[str, Any]] = []
    by_staff_id = _by_staff(session, member_ids[0]) if member_ids else None
    for chunk in _chunks(member_ids, CHUNK):
        contacts = session.execute(
            select(
                WecomContact.id,
                WecomContact.member_id,
                WecomContact.userid,
                WecomContact.external_userid,
            ).where(
                WecomContact.tenant_id == tenant_id,
                WecomContact.guide_id == from_guide.id,
                WecomContact.status == "active",
                WecomContact.member_id.in_(chunk),
            )
        ).all()
        takeover = to_guide.wecom_userid
        for contact_id, member_id, userid, external_userid in contacts:
            rows.append(
                {
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "member_id": member_id,
                    "contact_id": contact_id,
                    "external_userid": external_userid,
                    "handover_userid": userid,
                    "takeover_userid": takeover,
                    "from_guide_id": from_guide.id,
                    "to_guide_id": to_guide.id,
                    "from_store_id": from_guide.store_id,
                    "to_store_id": to_guide.store_id,
                    "state": "pending" if takeover else "failed",
                    "reason": None if takeover else "takeover_not_in_wecom",
                    "error": None if takeover else FAILURE_WORDS["takeover_not_in_wecom"],
                    "attempts": 0,
                    "next_attempt_at": now,
                    "by_staff_id": by_staff_id,
                    "requested_at": now,
                    "finished_at": None if takeover else now,
                    "updated_at": now,
                }
            )
    for chunk in _chunks(rows, CHUNK):
        session.execute(insert(WecomTransfer), chunk)
    if any(row["state"] == "pending" for row in rows):
        wake(session, tenant_id)
    if rows or rerouted:
        log.info(
            "wecom transfers requested",
            extra={"tenant_id": tenant_id, "transfers": len(rows), "rerouted": rerouted},
        )


def _reroute(session, tenant_id, member_ids, *, from_guide, to_guide, now) -> int:
    """Members moving on again before WeCom was asked to hand them to `from_guide`: the
    customer is still with the first guide in WeCom, so the transfer not yet sent now goes
    to `to_guide` instead, or is withdrawn when they go back to the first guide. (A transfer
    WeCom already has cannot be changed: its outcome is mirrored as it comes.)"""
    rerouted = 0
    for chunk in _chunks(member_ids, CHUNK):
        rows = session.scalars(
            select(WecomTransfer)
            .where(
                WecomTransfer.tenant_id == tenant_id,
                WecomTransfer.state == "pending",
                WecomTransfer.to_guide_id == from_guide.id,
                WecomTransfer.member_id.in_(chunk),
            )
            .with_for_update()
        ).all()
        for row in rows:
            rerouted += 1
            row.updated_at = now
            if row.from_guide_id == to_guide.id:
                row.state, row.reason, row.finished_at = "failed", "withdrawn", now
                row.error = FAILURE_WORDS["withdrawn"]
                continue
            row.to_guide_id, row.to_store_id = to_guide.id, to_guide.store_id
            row.takeover_userid = to_guide.wecom_userid
            if to_guide.wecom_userid is None:
                row.state, row.reason, row.finished_at = "failed", "takeover_not_in_wecom", now
                row.error = FAILURE_WORDS["takeover_not_in_wecom"]
    session.flush()
    return rerouted


def _by_staff(session: Session, member_id: str) -> str | None:
    """Who moved the members: the signal does not say, the binding it opened does."""
    return session.scalar(
        select(Binding.by_staff_id).where(
            Binding.member_id == member_id, Binding.ended_at.is_(None)
        )
    )


def wake(session: Session, tenant_id: str, *, delay: float | None = None) -> None:
    """See that the tenant's transfers job runs (now, or in `delay` s)."""
    jobs.ensure_due(session, tenant_id=tenant_id, kind=KIND, delay=delay)


# --- the job: send, poll, wake again ---------------------------------------------------------


@jobs.kind(KIND, unit="customers")
def run(ctx: jobs.JobContext) -> dict:
    counts: dict[str, int] = defaultdict(int)
    busy = _send_due(ctx, counts)
    if not busy:
        _poll_waiting(ctx, counts)
    with ctx.unit() as session:
        delay = _next_run_in(session, ctx.tenant_id)
        if delay is not None:
            wake(session, ctx.tenant_id, delay=delay)
    return {name: n for name, n in counts.items() if n}


def _send_due(ctx: jobs.JobContext, counts) -> bool:
    """Send the due pending transfers, a batch of one handover/takeover pair per unit; True
    when WeCom was busy (the rest waits for the retry)."""
    tried: set[str] = set()
    while True:
        with ctx.reading() as session:
            batch = _next_batch(session, ctx.tenant_id, exclude=tried)
        if not batch:
            return False
        tried.update(batch)
        with ctx.unit() as session:
            outcome = send_batch(session, ctx.tenant_id, batch)
            ctx.progress(ctx.done + len(batch))
        for state, n in outcome.items():
            counts[state] += n
        if outcome.get("busy"):
            return True  # the rest waits for the retry


def _next_batch(session: Session, tenant_id: str, *, exclude: set[str]) -> list[str]:
    due = and_(
        WecomTransfer.tenant_id == tenant_id,
        WecomTransfer.state == "pending",
        WecomTransfer.next_attempt_at <= utcnow(),
    )
    first = session.execute(
        select(WecomTransfer.handover_userid, WecomTransfer.takeover_userid)
        .where(due, WecomTransfer.id.not_in(exclude) if exclude else due)
        .order_by(WecomTransfer.requested_at, WecomTransfer.id)
        .limit(1)
    ).first()
    if first is None:
        return []
    stmt = (
        select(WecomTransfer.id)
        .where(
            due,
            WecomTransfer.handover_userid == first.handover_userid,
            WecomTransfer.takeover_userid == first.takeover_userid,
        )
        .order_by(WecomTransfer.requested_at, WecomTransfer.id)
    )
    if exclude:
        stmt = stmt.where(WecomTransfer.id.not_in(exclude))
    return list(session.scalars(stmt.limit(BATCH)))


def send_batch(session: Session, tenant_id: str, ids: Sequence[str]) -> dict[str, int]:
    """Ask WeCom to hand these customers (one handover and takeover pair) over, in this
    unit: the answer and its effects commit together. Sent again after a crash, WeCom
    answers 40129 ("being transferred") for those it already has: still waiting."""
    rows = _claim(session, ids, state="pending")
    if not rows:
        return {}
    now = utcnow()
    handover_guide = session.get(Staff, rows[0].from_guide_id) if rows[0].from_guide_id else None
    kind = "resigned" if handover_guide is None or handover_guide.state == "left" else "onjob"
    # A pending transfer rerouted since the batch was read goes with the next batch.
    pair = (rows[0].handover_userid, rows[0].takeover_userid)
    rows = [row for row in rows if (row.handover_userid, row.takeover_userid) == pair]
    path = TRANSFER_PATH[kind]
    try:
        answer = contact_client(session, tenant_id).call(
            "transfer customers",
            "post",
            path,
            data={
                "handover_userid": rows[0].handover_userid,
                "takeover_userid": rows[0].takeover_userid,
                "external_userid": [row.external_userid for row in rows],
            },
        )
    except (WecomUnavailable, WecomNotConfigured) as error:
        return _later(session, rows, error, now)
    except WecomRefused as error:
        if error.errcode in NOT_YET:
            return _later(session, rows, error, now)
        _fail(
            session,
            rows,
            reason=f"errcode {error.errcode}",
            errcode=error.errcode,
            error=error.message,
            now=now,
        )
        return {"failed": len(rows)}
    codes = {
        item.get("external_userid"): item.get("errcode") for item in answer.get("customer") or []
    }
    refused: dict[int | None, list[WecomTransfer]] = defaultdict(list)
    waiting = 0
    for row in rows:
        row.kind, row.attempts = kind, row.attempts + 1
        # No per-customer list at all: started, as errcode 0 says; the poll will tell.
        code = codes.get(row.external_userid, 0 if not codes else None)
        if code in (0, 40129):  # started now, or already under way (a resend)
            row.state, row.sent_at, row.updated_at = "waiting", now, now
            row.error = row.errcode = None
            waiting += 1
        else:
            refused[code].append(row)
    for code, rows_refused in refused.items():
        _fail(
            session,
            rows_refused,
            reason=f"errcode {code}" if code is not None else "no_answer",
            errcode=code,
            error=f"WeCom would not start this transfer (errcode {code})."
            if code is not None
            else "WeCom's answer did not name this customer.",
            now=now,
        )
    session.flush()
    return {"sent": waiting, "failed": sum(len(r) for r in refused.values())}


def _later(session: Session, rows: list[WecomTransfer], error: DomainError, now) -> dict:
    """WeCom cannot take these now: ask again after the backoff, or give up after the last
    attempt (and the customers stay with the old guide)."""
    settings = settings_of(session)
    errcode = getattr(error, "errcode", None)
    given_up = []
    for row in rows:
        row.attempts += 1
        row.errcode, row.error, row.updated_at = errcode, error.message, now
        if row.attempts >= settings.transfer_max_attempts:
            given_up.append(row)
        else:
            wait = min(settings.transfer_retry_s * 2 ** (row.attempts - 1), MAX_RETRY_S)
            row.next_attempt_at = now + timedelta(seconds=wait)
    if given_up:
        _fail(
            session,
            given_up,
            reason="wecom_unavailable" if errcode not in NOT_YET else f"errcode {errcode}",
            errcode=errcode,
            error=f"Gave up after {settings.transfer_max_attempts} attempts: {error.message}",
            now=now,
        )
    log.warning(
        "wecom transfer deferred",
        extra={"transfers": len(rows), "errcode": errcode, "given_up": len(given_up)},
    )
    session.flush()
    # A busy WeCom is busy for every batch: the run stops sending. A handover member WeCom
    # does not know as resigned yet holds up only their own customers.
    deferred = "deferred" if errcode in NOT_YET else "busy"
    return {deferred: len(rows) - len(given_up), "failed": len(given_up)}


def _poll_waiting(ctx: jobs.JobContext, counts) -> None:
    with ctx.reading() as session:
        pairs = session.execute(
            select(WecomTransfer.kind, WecomTransfer.handover_userid, WecomTransfer.takeover_userid)
            .where(WecomTransfer.tenant_id == ctx.tenant_id, WecomTransfer.state == "waiting")
            .distinct()
        ).all()
    for kind, handover, takeover in pairs:
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            with ctx.unit() as session:
                try:
                    cursor, outcome = poll_page(
                        session, ctx.tenant_id, kind, handover, takeover, cursor, seen
                    )
                except (WecomUnavailable, WecomNotConfigured):
                    counts["busy"] += 1
                    return  # polled again at the next run
                except WecomRefused as error:  # e.g. a member removed from WeCom meanwhile
                    log.warning(
                        "wecom transfer results refused",
                        extra={"errcode": error.errcode, "handover": handover},
                    )
                    counts["refused"] += 1
                    break
            for state, n in outcome.items():
                counts[state] += n
            if not cursor:
                with ctx.unit() as session:
                    counts["failed"] += _no_record(
                        session, ctx.tenant_id, kind, handover, takeover, seen
                    )
                break


def poll_page(
    session: Session,
    tenant_id: str,
    kind: str,
    handover: str,
    takeover: str,
    cursor: str | None,
    seen: set[str],
) -> tuple[str | None, dict[str, int]]:
    """One page of WeCom's transfer results for a pair, applied to our waiting transfers;
    the next cursor (None on the last page)."""
    path = RESULT_PATH[kind]
    data = {"handover_userid": handover, "takeover_userid": takeover}
    if cursor:
        data["cursor"] = cursor
    answer = contact_client(session, tenant_id).call(
        "read transfer results", "post", path, data=data
    )
    # One customer may be listed more than once (moved to and fro): a waiting entry is the
    # transfer under way; otherwise the last one listed is the latest.
    latest: dict[str, dict] = {}
    for item in answer.get("customer") or []:
        external = item.get("external_userid")
        if latest.get(external, {}).get("status") != 2:
            latest[external] = item
    seen.update(latest)
    outcome: dict[str, int] = defaultdict(int)
    if latest:
        rows = session.scalars(
            select(WecomTransfer)
            .where(
                WecomTransfer.tenant_id == tenant_id,
                WecomTransfer.state == "waiting",
                WecomTransfer.kind == kind,
                WecomTransfer.handover_userid == handover,
                WecomTransfer.takeover_userid == takeover,
                WecomTransfer.external_userid.in_(list(latest)),
            )
            .with_for_update()
        ).all()
        failed: dict[str, list[WecomTransfer]] = defaultdict(list)
        now = utcnow()
        for row in rows:
            item = latest[row.external_userid]
            status, at = int(item.get("status") or 0), _moment(item.get("takeover_time"))
            if status == 1:
                _succeed(session, row, at or now)
                outcome["succeeded"] += 1
            elif status == 2:
                row.takeover_at = at
                outcome["waiting"] += 1
            else:
                failed[FAILED_STATUS.get(status, f"status {status}")].append(row)
        for reason, rows_failed in failed.items():
            _fail(session, rows_failed, reason=reason, now=now)
            outcome["failed"] += len(rows_failed)
        session.flush()
    return answer.get("next_cursor") or None, outcome


def _no_record(session, tenant_id, kind, handover, takeover, seen: set[str]) -> int:
    """Waiting transfers WeCom's results have never listed, long after we asked: failed."""
    stale = session.scalars(
        select(WecomTransfer)
        .where(
            WecomTransfer.tenant_id == tenant_id,
            WecomTransfer.state == "waiting",
            WecomTransfer.kind == kind,
            WecomTransfer.handover_userid == handover,
            WecomTransfer.takeover_userid == takeover,
            WecomTransfer.sent_at < utcnow() - NO_RECORD_AFTER,
        )
        .with_for_update()
    ).all()
    stale = [row for row in stale if row.external_userid not in seen]
    if stale:
        _fail(session, stale, reason="no_record", now=utcnow())
    return len(stale)


def _next_run_in(session: Session, tenant_id: str) -> float | None:
    """Seconds until the job has work again: the first retry due, or the next poll."""
    settings = settings_of(session)
    first_retry = session.scalar(
        select(func.min(WecomTransfer.next_attempt_at)).where(
            WecomTransfer.tenant_id == tenant_id, WecomTransfer.state == "pending"
        )
    )
    waiting = session.scalar(
        select(WecomTransfer.id)
        .where(WecomTransfer.tenant_id == tenant_id, WecomTransfer.state == "waiting")
        .limit(1)
    )
    delays = []
    if first_retry is not None:
        delays.append(max((first_retry - utcnow()).total_seconds(), 1.0))
    if waiting is not None:
        delays.append(settings.transfer_poll_s)
    return min(delays) if delays else None


# --- outcomes ---------------------------------------------------------------------------------


def _succeed(session: Session, row: WecomTransfer, at: datetime) -> None:
    """WeCom handed the customer over: the old relationship ends as transferred, the
    takeover guide's begins (kept as it is if the add event already recorded it)."""
    now = utcnow()
    row.state, row.takeover_at, row.finished_at, row.updated_at = "succeeded", at, now, now
    row.error = row.reason = row.errcode = None
    old = session.get(WecomContact, row.contact_id)
    if old is not None and old.status == "active":
        old.status, old.ended_at = "transferred", at
    stmt = upsert(session, WecomContact).values(
        id=new_id(),
        tenant_id=row.tenant_id,
        member_id=row.member_id,
        guide_id=row.to_guide_id,
        userid=row.takeover_userid,
        external_userid=row.external_userid,
        state=old.state if old is not None else None,
        status="active",
        added_at=at,
        updated_at=now,
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id", "userid", "external_userid"],
            set_={
                "status": "active",
                "ended_at": None,
                "guide_id": row.to_guide_id,
                "member_id": row.member_id,
                "updated_at": now,
            },
        )
    )


def _fail(
    session: Session,
    rows: Iterable[WecomTransfer],
    *,
    reason: str,
    now: datetime,
    errcode: int | None = None,
    error: str | None = None,
) -> None:
    """The transfers failed: the customers stay with the old guide in WeCom, so the members
    go back to them in our books (those the new guide still holds)."""
    rows = list(rows)
    for row in rows:
        row.state, row.reason, row.finished_at, row.updated_at = "failed", reason[:40], now, now
        row.errcode = errcode
        row.error = error or FAILURE_WORDS.get(reason) or f"WeCom: {reason}."
    session.flush()
    by_pair: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        if row.from_guide_id:
            by_pair[row.to_guide_id, row.from_guide_id].append(row.member_id)
    for (holder_id, keeper_id), member_ids in by_pair.items():
        holder, keeper = session.get_one(Staff, holder_id), session.get_one(Staff, keeper_id)
        held = list(
            session.scalars(
                select(Member.id).where(
                    Member.id.in_(set(member_ids)), Member.guide_id == holder_id
                )
            )
        )
        if not held:  # moved on since: our books' newer decision stands
            continue
        session.info[ECHO] = True
        try:
            transfer_members(
                session,
                tenant_id=holder.tenant_id,
                from_guide=holder,
                to_guide=keeper,
                member_ids=held,
                by_staff_id=None,
                now=now,
                reason="wecom_kept",
                returning=True,
            )
        finally:
            session.info.pop(ECHO, None)
        log.info(
            "members kept with their guide after a failed wecom transfer",
            extra={"members": len(held), "guide_id": keeper_id, "reason": reason},
        )


def _claim(session: Session, ids: Sequence[str], *, state: str) -> list[WecomTransfer]:
    """Lock the rows still in `state` for this unit: an UPDATE that changes nothing takes
    the row locks (PostgreSQL) or the write lock (SQLite), so a second run waits, then
    finds them done."""
    session.execute(
        update(WecomTransfer)
        .where(WecomTransfer.id.in_(ids), WecomTransfer.state == state)
        .values(state=state)
    )
    return list(
        session.scalars(
            select(WecomTransfer)
            .where(WecomTransfer.id.in_(ids), WecomTransfer.state == state)
            .order_by(WecomTransfer.requested_at, WecomTransfer.id)
            .execution_options(populate_existing=True)
        )
    )


# --- WeCom's transfer_fail callback ------------------------------------------------------


@handles("change_external_contact", "transfer_fail")
def on_transfer_fail(session: Session, event: WecomEvent) -> dict:
    """客户接替失败: UserID is the takeover member (WeCom names no handover one), so the open
    transfers of that customer to that member fail, as a polled refusal does."""
    fields = event.fields or {}
    userid, external = fields.get("UserID"), fields.get("ExternalUserID")
    reason = str(fields.get("FailReason") or "customer_refused")[:40]
    rows = session.scalars(
        select(WecomTransfer)
        .where(
            WecomTransfer.tenant_id == event.tenant_id,
            WecomTransfer.external_userid == external,
            WecomTransfer.state.in_(OPEN),
            or_(WecomTransfer.takeover_userid == userid, WecomTransfer.handover_userid == userid),
        )
        .with_for_update()
    ).all()
    if rows:
        _fail(session, rows, reason=reason, now=utcnow())
    return {"transfers_failed": [row.id for row in rows], "reason": reason}


# --- reading them ---------------------------------------------------------------------------


def list_transfers(session: Session, *, actor, state=None, member_id=None, cursor=None, limit=50):
    """HQ: every transfer; a manager: those out of or into their store; guides: 403."""
    policy.require(actor, "see_wecom_transfers")
    stmt = select(WecomTransfer).where(policy.visible(actor, WecomTransfer))
    if state:
        stmt = stmt.where(WecomTransfer.state.in_(state))
    if member_id:
        stmt = stmt.where(WecomTransfer.member_id == member_id)
    keys = [WecomTransfer.requested_at, WecomTransfer.id]
    return paginate(session, stmt, keys, cursor=cursor, limit=limit, descending=True)


def _moment(seconds) -> datetime | None:
    """WeCom's takeover_time (Unix seconds; 0 when there is none)."""
    if not seconds:
        return None
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc)


def _chunks(items: Sequence, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]
