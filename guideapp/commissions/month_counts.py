"""Each guide's counted recruits per month, the count the tier bonuses read.

Counting the recruit rows grows with them (an import of a million members would count its
guides' months again for every batch); the count row is read in one step. It moves in the
same transaction as the recruit rows it counts: `add` when recruits are counted, and when a
merge turns one into a duplicate. `hold` locks a batch's rows (in key order, so two batches
never wait on each other in a circle) until commit, so two batches of one guide count one
after the other and never both pay the same tier step.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.commissions.models import CommissionMonthCount as Count
from guideapp.commissions.reads import rows_in
from guideapp.db import upsert_rows

Key = tuple[str, str]  # (guide id, month)
KEYS = ["tenant_id", "guide_id", "month"]


def hold(session: Session, tenant_id: str, keys: Iterable[Key]) -> Counter:
    """The counts of `keys`, their rows locked until commit (created at 0 when new)."""
    keys = sorted(set(keys))
    if not keys:
        return Counter()
    upsert_rows(
        session,
        Count.__table__,
        [{"tenant_id": tenant_id, "guide_id": g, "month": m, "counted": 0} for g, m in keys],
        keys=KEYS,
    )
    stmt = (
        select(Count.guide_id, Count.month, Count.counted)
        .where(Count.tenant_id == tenant_id, Count.month.in_({m for _, m in keys}))
        .order_by(Count.guide_id, Count.month)
        .with_for_update()
    )
    wanted = set(keys)
    return Counter(
        {
            (g, m): n
            for g, m, n in rows_in(session, stmt, Count.guide_id, [g for g, _ in keys])
            if (g, m) in wanted
        }
    )


def add(session: Session, tenant_id: str, deltas: Mapping[Key, int]) -> None:
    """Move the counts of `deltas`' keys by their values (negative for uncounted recruits)."""
    rows = [
        {"tenant_id": tenant_id, "guide_id": g, "month": m, "counted": n}
        for (g, m), n in sorted(deltas.items())
        if n
    ]
    upsert_rows(session, Count.__table__, rows, keys=KEYS, add=("counted",))
