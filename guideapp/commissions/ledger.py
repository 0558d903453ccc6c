"""Earning events into the append-only ledger: recruits, orders, refunds and merges."""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence, cast

from sqlalchemy import CursorResult, func, select, text, update
from sqlalchemy.orm import Session

from guideapp.commissions import month_counts
from guideapp.commissions import rules as maths
from guideapp.commissions.models import (
    EARNING_KINDS,
    CommissionEntry,
    CommissionRecruit,
    CommissionRule,
    CommissionSettlement,
)
from guideapp.db import new_id, upsert, utcnow
from guideapp.members.identity import follow_merges
from guideapp.members.models import Member
from guideapp.org.models import Staff, Store, Tenant


@dataclass
class Event:
    """Who earns for an event, when, and in which accounting month the entry lands."""

    tenant_id: str
    zone: str
    at: datetime
    month: str  # the event's month on the tenant's clock
    closed: set = field(default_factory=set)

    @property
    def accounting_month(self) -> str:
        return maths.accounting_month(self.month, self.closed)


def month_lock(session: Session, tenant_id: str, *, exclusive: bool) -> None:
    """Ledger writers share a per-tenant transaction lock that closing a month takes alone,
    so no entry lands in a month while it is being closed. PostgreSQL advisory locks create
    no row locks (no MultiXact churn on the hot tenant row); SQLite serialises writers anyway.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    key = zlib.crc32(f"commissions:{tenant_id}".encode())
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(text(f"SELECT {lock}(:key)"), {"key": key})


def event(session: Session, tenant_id: str, at: datetime, *, booked_at=None) -> Event:
    """Take the shared month lock and date the event in the tenant's months.

    `booked_at` (a correction such as a clawback: when it is recorded) puts the entry in
    that month rather than the event's; either way a settled month is never written to."""
    return events(session, tenant_id, [at], booked_at=booked_at)[at]


def events(session: Session, tenant_id: str, moments, *, booked_at=None) -> dict[datetime, Event]:
    """`event()` for many moments at once (a batch of imported orders): one lock, one read
    of the tenant's zone and one of its closed months."""
    moments = set(moments)
    if not moments:
        return {}
    month_lock(session, tenant_id, exclusive=False)
    zone = session.execute(select(Tenant.timezone).where(Tenant.id == tenant_id)).scalar_one()
    months = {at: maths.month_of(booked_at or at, zone) for at in moments}
    closed = set(
        session.scalars(
            select(CommissionSettlement.month).where(
                CommissionSettlement.tenant_id == tenant_id,
                CommissionSettlement.month >= min(months.values()),
            )
        )
    )
    return {
        at: Event(tenant_id=tenant_id, zone=zone, at=at, month=months[at], closed=closed)
        for at in moments
    }


def applicable_rules(
    session: Session, *, ev: Event, kind: str, store: Store, campaign_id: str | None = None
) -> list[CommissionRule]:
    """Rule versions in force at the event whose scope covers the guide's store (or campaign)."""
    versions = session.scalars(
        select(CommissionRule).where(
            CommissionRule.tenant_id == ev.tenant_id,
            CommissionRule.kind == kind,
            CommissionRule.effective_from <= ev.at,
        )
    ).all()
    return rules_in_force(
        versions, at=ev.at, store_id=store.id, region_id=store.region_id, campaign_id=campaign_id
    )


def rules_in_force(
    versions, *, at: datetime, store_id: str, region_id: str | None, campaign_id: str | None
) -> list[CommissionRule]:
    """Of one kind's rule versions, those in force at `at` whose scope covers the store (or
    the campaign), in the order they pay: oldest rule first."""
    scope_ids = {"tenant": None, "region": region_id, "store": store_id, "campaign": campaign_id}
    return sorted(
        (
            r
            for r in maths.effective_versions(versions, at)
            if r.active
            and (r.effective_until is None or at < r.effective_until)
            and (
                r.scope == "tenant"
                or (scope_ids[r.scope] is not None and r.scope_id == scope_ids[r.scope])
            )
        ),
        key=lambda r: (r.created_at, r.id),
    )


def is_staff_phone(session: Session, *phones: str | None) -> bool:
    """Guides cannot recruit themselves or any colleague: staff phones never earn."""
    given = [p for p in phones if p]
    return (
        bool(given)
        and session.execute(select(func.count(Staff.id)).where(Staff.phone.in_(given))).scalar_one()
        > 0
    )


def used_this_month(session: Session, *, rule: CommissionRule, guide_id: str, month: str) -> int:
    """Gross earned under any version of `rule` by the guide in an accounting month (caps)."""
    return session.execute(
        select(func.coalesce(func.sum(CommissionEntry.amount_fen), 0))
        .join(CommissionRule, CommissionRule.id == CommissionEntry.rule_id)
        .where(
            CommissionEntry.guide_id == guide_id,
            CommissionEntry.accounting_month == month,
            CommissionEntry.kind.in_(EARNING_KINDS),
            CommissionRule.tenant_id == rule.tenant_id,
            CommissionRule.rule_key == rule.rule_key,
        )
    ).scalar_one()


def write(session: Session, ev: Event, **values) -> bool:
    """Append one entry; the unique (source event, rule version, kind) key makes it once-only."""
    result = session.execute(
        _insert_once(session).values(**entry_row(ev, **values)),
        execution_options={"preserve_rowcount": True},
    )
    return cast(CursorResult[Any], result).rowcount == 1


def write_many(session: Session, rows: list[dict]) -> None:
    """Append `entry_row`s in one executemany (a batch of imported orders), each once-only."""
    if rows:
        session.execute(_insert_once(session), rows)


def entry_row(ev: Event, **values) -> dict:
    """A complete ledger row for an event (every column: a batch inserts as one executemany)."""
    return {
        "id": new_id(),
        "tenant_id": ev.tenant_id,
        "event_at": ev.at,
        "accounting_month": ev.accounting_month,
        "created_at": utcnow(),
        "member_id": None,
        "reverses_id": None,
        "basis_fen": None,
        **values,
    }


def _insert_once(session: Session):
    return upsert(session, CommissionEntry).on_conflict_do_nothing()


def earn(
    session: Session,
    ev: Event,
    *,
    rule: CommissionRule,
    guide: Staff,
    kind: str,
    amount_fen: int,
    source_type: str,
    source_id: str,
    member_id: str | None,
    basis_fen: int | None = None,
) -> bool:
    """An earning under `rule`, cut to the rule's monthly cap; nothing is written for 0 fen."""
    if rule.cap_fen is not None:
        used = used_this_month(session, rule=rule, guide_id=guide.id, month=ev.accounting_month)
        amount_fen = maths.capped(amount_fen, rule.cap_fen, used)
    if amount_fen <= 0:
        return False
    return write(
        session,
        ev,
        guide_id=guide.id,
        store_id=guide.store_id,
        member_id=member_id,
        rule_id=rule.id,
        kind=kind,
        source_type=source_type,
        source_id=source_id,
        amount_fen=amount_fen,
        basis_fen=basis_fen,
    )


def remaining_of(session: Session, entry: CommissionEntry) -> tuple[int, int]:
    """(clawed back so far, what is left) of an earning after its clawbacks and reversals."""
    rows = session.execute(
        select(CommissionEntry.kind, func.sum(CommissionEntry.amount_fen))
        .where(CommissionEntry.reverses_id == entry.id)
        .group_by(CommissionEntry.kind)
    ).all()
    by_kind = {kind: int(total) for kind, total in rows}
    return -by_kind.get("clawback", 0), entry.amount_fen + sum(by_kind.values())


def reverse(
    session: Session,
    ev: Event,
    entry: CommissionEntry,
    *,
    source_type: str,
    source_id: str,
    kind: str = "reversal",
    amount_fen: int | None = None,
    basis_fen: int | None = None,
) -> bool:
    """A correcting entry against `entry` (all that is left of it unless an amount is given)."""
    amount = remaining_of(session, entry)[1] if amount_fen is None else amount_fen
    if amount <= 0:
        return False
    return write(
        session,
        ev,
        guide_id=entry.guide_id,
        store_id=entry.store_id,
        member_id=entry.member_id,
        rule_id=entry.rule_id,
        kind=kind,
        source_type=source_type,
        source_id=source_id,
        reverses_id=entry.id,
        amount_fen=-amount,
        basis_fen=entry.basis_fen if basis_fen is None else basis_fen,
    )


def person_member_ids(session: Session, person_id: str) -> set[str]:
    """The person's member id and every member merged into it, however deep."""
    ids, frontier = {person_id}, {person_id}
    while frontier:
        frontier = (
            set(session.scalars(select(Member.id).where(Member.merged_into_id.in_(frontier)))) - ids
        )
        ids |= frontier
    return ids


def resolve(session: Session, member: Member) -> Member:
    return follow_merges(session, member) or member


def mark_duplicates(session: Session, *, tenant_id: str, person_id: str) -> Sequence:
    """Counted recruits of one person beyond the first become duplicates; returns them."""
    counted = session.scalars(
        select(CommissionRecruit)
        .where(
            CommissionRecruit.tenant_id == tenant_id,
            CommissionRecruit.person_id == person_id,
            CommissionRecruit.state == "counted",
        )
        .order_by(CommissionRecruit.recruited_at, CommissionRecruit.id)
    ).all()
    extra = counted[1:]
    if extra:
        session.execute(
            update(CommissionRecruit)
            .where(CommissionRecruit.id.in_([r.id for r in extra]))
            .values(state="duplicate")
        )
        uncounted = Counter((r.guide_id, r.month) for r in extra)
        month_counts.add(session, tenant_id, {key: -n for key, n in uncounted.items()})
    return extra
