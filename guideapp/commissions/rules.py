"""Pure commission maths on integer fen: percentages, clawback, caps, tiers and months.

Rounding: a percentage is `amount_fen * rate_bp // 10000`, rounded down to the fen (the
brand never pays a fraction it did not owe). A clawback is computed cumulatively:
after refunds totalling R of an order of A that earned E, the clawed-back total is
`E * R // A`, so a full refund claws back exactly E, partial refunds never more than E,
and the sum of clawbacks never depends on how the refunds were split.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

BP = 10_000


def percent_of(amount_fen: int, rate_bp: int) -> int:
    """`rate_bp` basis points of `amount_fen`, rounded down; integers in, integer out."""
    if amount_fen < 0 or not 0 <= rate_bp <= BP:
        raise ValueError("amount must be >= 0 and rate within 0..10000 bp")
    return amount_fen * rate_bp // BP


def clawback_due(
    *, earned_fen: int, order_fen: int, refunded_fen: int, clawed_fen: int, remaining_fen: int
) -> int:
    """How much more to claw back (>= 0) now that `refunded_fen` of the order is refunded.

    `clawed_fen`: clawed back so far for this earning; `remaining_fen`: what is left of it
    after every clawback and reversal (a reversed earning has nothing left to claw).
    """
    if order_fen <= 0 or earned_fen <= 0:
        return 0
    refunded = min(max(refunded_fen, 0), order_fen)
    target = earned_fen * refunded // order_fen
    return max(0, min(target - clawed_fen, remaining_fen))


def capped(amount_fen: int, cap_fen: int | None, used_fen: int) -> int:
    """The part of `amount_fen` that still fits under a monthly cap already `used_fen`."""
    if cap_fen is None:
        return amount_fen
    return max(0, min(amount_fen, cap_fen - used_fen))


def tiers_reached(tiers: list[dict] | None, recruits: int) -> list[dict]:
    """The tier steps a count of recruits has reached, lowest first."""
    steps = sorted(tiers or [], key=lambda t: t["recruits"])
    return [t for t in steps if recruits >= t["recruits"]]


def month_of(moment: datetime, zone: str) -> str:
    """The YYYY-MM a moment falls in, on the tenant's wall clock."""
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m")


def month_bounds(month: str, zone: str) -> tuple[datetime, datetime]:
    """[start, end) of a tenant month in UTC."""
    year, mon = (int(p) for p in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=ZoneInfo(zone))
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=ZoneInfo(zone))
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def next_month(month: str) -> str:
    year, mon = (int(p) for p in month.split("-"))
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def accounting_month(event_month: str, closed: set[str]) -> str:
    """The event's month, or the first month after it that is not closed yet."""
    month = event_month
    while month in closed:
        month = next_month(month)
    return month


def yuan(fen: int) -> str:
    """Fen as a price a guide reads: 500 -> '¥5.00', -150 -> '-¥1.50' (no floats)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def effective_versions(versions: list, at: datetime) -> list:
    """Per rule, the newest version in force at `at` (later effective_from wins, then version)."""
    best: dict[str, Any] = {}
    for v in versions:
        if v.effective_from > at:
            continue
        held = best.get(v.rule_key)
        if held is None or (v.effective_from, v.version) > (held.effective_from, held.version):
            best[v.rule_key] = v
    return list(best.values())
