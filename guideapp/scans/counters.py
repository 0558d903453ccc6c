"""Atomic counters on both databases: rate-limit windows and the guides' round-robin."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from guideapp.db import upsert
from guideapp.errors import TooManyRequests
from guideapp.scans.models import GuideRotation, ScanRateWindow


def increment(session: Session, model, keys: dict, column: str) -> int:
    """INSERT ... ON CONFLICT DO UPDATE SET n = n + 1 RETURNING n: one atomic statement."""
    counter = getattr(model, column)
    stmt = upsert(session, model).values(**keys, **{column: 1})
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={column: counter + 1})
    return session.execute(stmt.returning(counter)).scalar_one()


def hit(session: Session, *, limits: list[tuple[str, int]], window_s: int, now: datetime) -> None:
    """Count one hit on every key; 429 with Retry-After when a key is over its limit.

    One multi-row upsert counts every key; the last of `limits` is the shared one. Refused
    hits roll back with the request, so a key over its limit stays there until its window
    ends. Run this in its own short transaction
    (the counter rows are hot); on PostgreSQL it commits without waiting for the disk,
    since a counter lost in a crash only lets a few more scans through.
    """
    stamp = now.timestamp()
    start = int(stamp // window_s * window_s)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    stmt = upsert(session, ScanRateWindow).values(
        [{"key": key, "window_start": start, "hits": 1} for key, _ in limits]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["key", "window_start"], set_={"hits": ScanRateWindow.hits + 1}
    )
    counted = dict(session.execute(stmt.returning(ScanRateWindow.key, ScanRateWindow.hits)).all())
    # The last key is the shared one (the code, the callback URL): its first hit in a window
    # drops the older windows, once per window and key. Not on a new address's first hit:
    # a crowd of phones would sweep the whole table on nearly every scan.
    if counted[limits[-1][0]] == 1:
        session.execute(delete(ScanRateWindow).where(ScanRateWindow.window_start < start))
    over = [key for key, limit in limits if counted[key] > limit]
    if over:
        raise TooManyRequests(
            "Too many scans; wait and try again.",
            errors={"rate_limit": [key.split(":", 1)[0] for key in over]},
            headers={"Retry-After": str(max(1, math.ceil(start + window_s - stamp)))},
        )


def next_turn(session: Session, *, tenant_id: str, store_id: str) -> int:
    """The store's next round-robin turn (1, 2, 3, ...), race-free across workers."""
    keys = {"store_id": store_id, "tenant_id": tenant_id}  # the table's whole primary key
    return increment(session, GuideRotation, keys, "turns")
