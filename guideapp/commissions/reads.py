"""Set-based reads the commission receivers share: IN lists in chunks, buyers through merges,
what capped rules already paid."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp.db import any_of
from guideapp.commissions.models import EARNING_KINDS, CommissionEntry, CommissionRule
from guideapp.members.models import Member

BATCH = 1000  # ids per IN list: a batch of any size costs a fixed number of statements each


def rows_in(session: Session, stmt, column, values, *, scalars: bool = False) -> list:
    """`stmt` restricted to `column IN values`, BATCH values per statement (PostgreSQL: one
    bound array per statement, db.any_of: an import's batch names thousands of ids, and an
    IN list of a thousand parameters costs more to build and parse than to run)."""
    values = list(dict.fromkeys(v for v in values if v is not None))
    found: list = []
    for start in range(0, len(values), BATCH):
        chunk = stmt.where(any_of(session, column, values[start : start + BATCH]))
        found += session.scalars(chunk).all() if scalars else session.execute(chunk).all()
    return found


@dataclass
class Buyer:
    id: str
    phone: str | None
    merged_into_id: str | None
    bound_at: datetime | None
    binding_locked_until: datetime | None
    # The member a chain of merges ends at (itself if none): set by people() for every one.
    person: "Buyer" = field(init=False)


def people(session: Session, member_ids: set) -> dict[str, Buyer]:
    """Members by id, each with the person it resolves to through merges (ledger.resolve)."""
    columns = select(
        Member.id, Member.phone, Member.merged_into_id, Member.bound_at, Member.binding_locked_until
    )
    found: dict[str, Buyer] = {}
    wanted, asked = set(member_ids), set()
    while wanted:  # one statement per level of merges
        asked |= wanted
        for row in rows_in(session, columns, Member.id, wanted):
            found[row.id] = Buyer(*row)
        wanted = {m.merged_into_id for m in found.values() if m.merged_into_id} - asked
    for member in found.values():
        person, seen = member, set()
        while person.merged_into_id in found and person.id not in seen:
            seen.add(person.id)
            person = found[person.merged_into_id]
        member.person = person
    return {i: found[i] for i in member_ids if i in found}


def used_under_caps(session: Session, tenant_id: str, keys: set[tuple[str, str, str]]) -> dict:
    """What each guide already earned in an accounting month under each capped rule:
    ledger.used_this_month for every (rule_key, guide id, month) of `keys`, in one query."""
    if not keys:
        return {}
    rows = session.execute(
        select(
            CommissionRule.rule_key,
            CommissionEntry.guide_id,
            CommissionEntry.accounting_month,
            func.coalesce(func.sum(CommissionEntry.amount_fen), 0),
        )
        .join(CommissionRule, CommissionRule.id == CommissionEntry.rule_id)
        .where(
            CommissionRule.tenant_id == tenant_id,
            CommissionRule.rule_key.in_({k for k, _, _ in keys}),
            CommissionEntry.guide_id.in_({g for _, g, _ in keys}),
            CommissionEntry.accounting_month.in_({m for _, _, m in keys}),
            CommissionEntry.kind.in_(EARNING_KINDS),
        )
        .group_by(
            CommissionRule.rule_key, CommissionEntry.guide_id, CommissionEntry.accounting_month
        )
    )
    return {(k, g, m): int(total) for k, g, m, total in rows}
