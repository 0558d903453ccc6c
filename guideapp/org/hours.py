"""Opening hours ({"mon": ["10:00", "22:00"], "sun": None, ...}) read at a local time.

A day set to None is closed; a day left out is unknown, and so are hours never given:
the landing page then shows no open/closed badge rather than a guess.
"""

from __future__ import annotations

from datetime import datetime, timedelta

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def hours_on(opening_hours: dict | None, local: datetime) -> list[str] | None:
    """That day's [opens, closes], or None (closed or unknown)."""
    span = (opening_hours or {}).get(WEEKDAYS[local.weekday()])
    return list(span) if span else None


def open_at(opening_hours: dict | None, local: datetime) -> bool | None:
    """Open at this wall-clock time; None when that day's hours are unknown."""
    day = WEEKDAYS[local.weekday()]
    if day not in (opening_hours or {}):
        return None
    span = (opening_hours or {})[day]
    if not span:
        return False
    return span[0] <= f"{local:%H:%M}" < span[1]


def next_opening(opening_hours: dict | None, local: datetime) -> dict | None:
    """The next time it opens after `local` within a week: {weekday, time, in_days}."""
    now = f"{local:%H:%M}"
    for in_days in range(8):
        day = local + timedelta(days=in_days)
        span = (opening_hours or {}).get(WEEKDAYS[day.weekday()])
        if span and (in_days > 0 or span[0] > now):
            return {"weekday": WEEKDAYS[day.weekday()], "time": span[0], "in_days": in_days}
    return None
