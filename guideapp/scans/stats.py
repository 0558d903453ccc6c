"""Scan statistics: scans, new members and bindings per code x channel x store x day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.db import utcnow
from guideapp.errors import InvalidInput
from guideapp.org.models import Store, Tenant
from guideapp.scans.models import Scan, ScanCode

DIMENSIONS = {
    "code": Scan.code_id,
    "channel": Scan.channel,
    "store": Scan.store_id,
    "guide": Scan.guide_id,
    "day": Scan.scanned_on,
}
KEY_NAMES = {
    "code": "code_id",
    "channel": "channel",
    "store": "store_id",
    "guide": "guide_id",
    "day": "day",
}
REFUSED = ("expired", "not_yet_valid", "inactive")
MAX_DAYS = 366


def scan_stats(
    session: Session,
    *,
    actor: Actor,
    group_by: list[str],
    date_from=None,
    date_to=None,
    code_id: str | None = None,
    now: datetime | None = None,
) -> dict:
    """One GROUP BY over the caller's visible scans (HQ: tenant; manager: store) in the range.

    Days are the tenant's local days; scans refused (expired code...) count only as refused.
    """
    date_from, date_to = _range(session, actor, date_from, date_to, now)
    dims = list(dict.fromkeys(group_by))
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise InvalidInput(errors={"group_by": [f"Unknown dimension(s): {', '.join(unknown)}."]})
    columns = [DIMENSIONS[d].label(KEY_NAMES[d]) for d in dims]
    refused = Scan.outcome.in_(REFUSED)
    stmt = select(
        *columns,
        func.sum(case((refused, 0), else_=1)).label("scans"),
        func.sum(case((Scan.member_created, 1), else_=0)).label("new_members"),
        func.sum(case((Scan.bound, 1), else_=0)).label("bindings"),
        func.sum(case((refused, 1), else_=0)).label("refused"),
    ).where(policy.visible(actor, Scan), Scan.scanned_on.between(date_from, date_to))
    if code_id is not None:
        stmt = stmt.where(Scan.code_id == code_id)
    rows = [
        dict(row._mapping) for row in session.execute(stmt.group_by(*columns).order_by(*columns))
    ]
    totals = {
        k: sum(int(r[k] or 0) for r in rows)
        for k in ("scans", "new_members", "bindings", "refused")
    }
    for row in rows:
        for k in totals:
            row[k] = int(row[k] or 0)
    _label(session, rows)
    return {
        "group_by": dims,
        "date_from": date_from,
        "date_to": date_to,
        "totals": totals,
        "rows": rows,
    }


def code_stats(session: Session, *, actor: Actor, code_id: str, date_from=None, date_to=None):
    code = policy.get_visible(session, actor, ScanCode, code_id, label="Code")
    return scan_stats(
        session,
        actor=actor,
        group_by=["day"],
        date_from=date_from,
        date_to=date_to,
        code_id=code.id,
    )


def _range(session, actor, date_from: date | None, date_to: date | None, now) -> tuple:
    if date_to is None:
        zone = session.execute(
            select(Tenant.timezone).where(Tenant.id == actor.tenant_id)
        ).scalar_one()
        date_to = (now or utcnow()).astimezone(ZoneInfo(zone)).date()
    if date_from is None:
        date_from = date_to - timedelta(days=29)
    if date_from > date_to:
        raise InvalidInput(errors={"from": ["Must not be after 'to'."]})
    if (date_to - date_from).days >= MAX_DAYS:
        raise InvalidInput(errors={"from": [f"At most {MAX_DAYS} days at a time."]})
    return date_from, date_to


def _label(session: Session, rows: list[dict]) -> None:
    """Codes and store names next to their ids (one query per dimension present)."""
    code_ids = {r["code_id"] for r in rows if r.get("code_id")}
    store_ids = {r["store_id"] for r in rows if r.get("store_id")}
    codes = (
        dict(
            session.execute(
                select(ScanCode.id, ScanCode.code).where(ScanCode.id.in_(code_ids))
            ).all()
        )
        if code_ids
        else {}
    )
    stores = (
        dict(session.execute(select(Store.id, Store.name).where(Store.id.in_(store_ids))).all())
        if store_ids
        else {}
    )
    for row in rows:
        if "code_id" in row:
            row["code"] = codes.get(row["code_id"])
        if "store_id" in row:
            row["store_name"] = stores.get(row["store_id"])
