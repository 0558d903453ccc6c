"""Times that record facts (an order, a refund, a member joining): one check for every door.

A fact has happened, so its time is at most a small clock skew ahead of the server's clock
(`GUIDEAPP_MAX_CLOCK_SKEW_MINUTES`, 5 by default), and not before the earliest date the
system takes (`GUIDEAPP_EARLIEST_FACT_DATE`, 2000-01-01 UTC by default: older dates are
typos or placeholders such as 1900-01-01 and 0001-01-01). Facts that follow another (a
refund follows its order) are not earlier than it. REST, sync and imports all call this.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from guideapp.config import Config
from guideapp.errors import InvalidInput


def max_skew() -> timedelta:
    return timedelta(minutes=Config.MAX_CLOCK_SKEW_MINUTES)


def earliest() -> datetime:
    day = date.fromisoformat(Config.EARLIEST_FACT_DATE)
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def fact_time_problem(
    value: datetime,
    *,
    now: datetime | None = None,
    after: datetime | None = None,
    after_what: str = "",
) -> str | None:
    """Why `value` cannot be the time of a fact, or None when it can."""
    now = now or datetime.now(timezone.utc)
    if value.tzinfo is None:
        return "A time with its zone offset, e.g. 2026-11-20T10:00:00+08:00."
    if value > now + max_skew():
        return (
            f"{_utc(value)} is in the future (the server's clock says {_utc(now)}; "
            f"at most {Config.MAX_CLOCK_SKEW_MINUTES} minutes ahead are taken)."
        )
    floor = earliest()
    if value < floor:
        return f"{_utc(value)} is before {floor:%Y-%m-%d}, the earliest date taken; check the year."
    if after is not None and value < after:
        return f"{_utc(value)} is before the {after_what} ({_utc(after)})."
    return None


def check_fact_time(
    field: str,
    value: datetime,
    *,
    now: datetime | None = None,
    after: datetime | None = None,
    after_what: str = "",
) -> datetime:
    """`value`, or a 422 naming `field`."""
    problem = fact_time_problem(value, now=now, after=after, after_what=after_what)
    if problem:
        raise InvalidInput(errors={field: [problem]})
    return value


def _utc(value: datetime) -> str:
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01 with a positive offset has no UTC time
        pass
    return value.isoformat(timespec="minutes")
