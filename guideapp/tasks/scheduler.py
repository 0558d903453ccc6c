"""The scheduler tick: SOP rules and calendar items become tasks, each exactly once.

Run it from cron as often as you like. Each run processes every local day from the last
run's day through today (catching up after downtime, at most MAX_CATCH_UP_DAYS), and
every generated task has a deterministic id and unique dedupe key, so a repeated or
concurrent tick inserts nothing twice (INSERT ... ON CONFLICT DO NOTHING).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, func, literal, or_, select
from sqlalchemy.orm import Session

from guideapp.coupons.models import Coupon
from guideapp.db import UTCDateTime, insert_ignoring_duplicates, utcnow
from guideapp.members.models import Binding, Member, PointsEntry
from guideapp.org.models import Store, Tenant
from guideapp.tasks.fanout import (
    TARGET_COLUMNS,
    TASK_COLUMNS,
    log_generated,
    task_row_select,
)
from guideapp.tasks.models import CalendarItem, SchedulerRun, SopRule, Task, TaskTarget
from guideapp.tasks.signals import scheduler_ticked
from guideapp.tasks.targeting import target_stores

MAX_CATCH_UP_DAYS = 31
CALENDAR_WINDOW = ("10:00", "21:00")


def tick(session: Session, *, tenant_id: str, now: datetime | None = None) -> SchedulerRun:
    now = now or utcnow()
    tenant = session.execute(
        select(Tenant).where(Tenant.id == tenant_id).with_for_update()
    ).scalar_one()
    zone = ZoneInfo(tenant.timezone)
    today = now.astimezone(zone).date()
    last, last_started = session.execute(
        select(func.max(SchedulerRun.through_day), func.max(SchedulerRun.started_at)).where(
            SchedulerRun.tenant_id == tenant_id
        )
    ).one()
    first = max(last or today, today - timedelta(days=MAX_CATCH_UP_DAYS))
    run = SchedulerRun(tenant_id=tenant_id, started_at=now, from_day=first, through_day=today)
    created = {"sop_tasks": 0, "calendar_tasks": 0}
    rules = session.scalars(
        select(SopRule).where(SopRule.tenant_id == tenant_id, SopRule.active.is_(True))
    ).all()
    day = first
    while day <= today:
        for rule in rules:
            if day >= rule.created_at.astimezone(zone).date():
                for index, step in enumerate(rule.steps):
                    created["sop_tasks"] += _sop_step(session, rule, index, step, day, zone, now)
        created["calendar_tasks"] += _calendar_day(session, tenant_id, day, zone, now)
        day += timedelta(days=1)
    # Other domains with time-based changes (materials opening, expiring; coupons issued on
    # birthdays, expiring) catch up too, over the same local days.
    scheduler_ticked.send(
        session, tenant_id=tenant_id, since=last_started, now=now, days=(first, today)
    )
    run.finished_at, run.created = utcnow(), created
    session.add(run)
    session.flush()
    return run


def local_time(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime.combine(day, time(hour, minute), zone)


def _day_range(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), zone)
    return start, datetime.combine(day + timedelta(days=1), time(0), zone)


def _in_day(column, day: date, zone: ZoneInfo):
    start, end = _day_range(day, zone)
    return and_(column >= literal(start, UTCDateTime()), column < literal(end, UTCDateTime()))


def trigger_condition(rule: SopRule, anchor: date, zone: ZoneInfo):
    """Members whose trigger falls on the local day `anchor` (indexed range scans)."""
    if rule.trigger == "member_joined":
        return _in_day(Member.joined_at, anchor, zone)
    if rule.trigger == "first_order":
        return _in_day(Member.first_order_at, anchor, zone)
    if rule.trigger == "birthday":
        days = [anchor.strftime("%m%d")]
        if anchor.month == 2 and anchor.day == 28 and not _leap(anchor.year):
            days.append("0229")  # leap-day birthdays are celebrated on the 28th
        return Member.birthday_mmdd.in_(days)
    if rule.trigger == "silent":
        silent_since = anchor - timedelta(days=int(rule.params["silent_days"]))
        start, end = _day_range(silent_since, zone)
        last_seen = func.coalesce(Member.last_order_at, Member.joined_at)
        return and_(
            last_seen >= literal(start, UTCDateTime()),
            last_seen < literal(end, UTCDateTime()),
            or_(
                Member.last_contact_at.is_(None),
                Member.last_contact_at < literal(start, UTCDateTime()),
            ),
        )
    if rule.trigger == "contact_lost":
        # The loss is on the running binding: the guide keeps the member in our books.
        return Member.id.in_(
            select(Binding.member_id).where(
                Binding.tenant_id == rule.tenant_id,
                Binding.ended_at.is_(None),
                _in_day(Binding.lost_at, anchor, zone),
            )
        )
    if rule.trigger == "points_expiring":
        return Member.id.in_(
            select(PointsEntry.member_id).where(
                PointsEntry.tenant_id == rule.tenant_id,
                PointsEntry.kind == "earn",
                _in_day(PointsEntry.expires_at, anchor, zone),
            )
        )
    if rule.trigger == "coupon_expiring":
        # Its last valid day: valid_to is exclusive, so a coupon "valid through the 7th"
        # (valid_to the 8th at 00:00 local) expires on the 7th.
        start, end = _day_range(anchor, zone)
        expiring = select(Coupon.member_id).where(
            Coupon.tenant_id == rule.tenant_id,
            Coupon.state == "available",
            Coupon.valid_to > literal(start, UTCDateTime()),
            Coupon.valid_to <= literal(end, UTCDateTime()),
        )
        if rule.params.get("template_id"):
            expiring = expiring.where(Coupon.template_id == rule.params["template_id"])
        return Member.id.in_(expiring)
    raise ValueError(f"unknown trigger {rule.trigger}")


def _sop_step(session, rule: SopRule, index: int, step: dict, day: date, zone, now) -> int:
    anchor = day - timedelta(days=step["days"])
    stamp = f"{index:02d}{anchor:%Y%m%d}"
    who = and_(
        Member.tenant_id == rule.tenant_id,
        Member.state == "active",
        Member.guide_id.is_not(None),
        trigger_condition(rule, anchor, zone),
    )
    id_prefix = f"{rule.id}{stamp}"
    rows = select(
        *task_row_select(
            tenant_id=rule.tenant_id,
            source="sop",
            key_prefix=f"sop:{rule.id}:{stamp}:",
            id_prefix=id_prefix,
            store_id=Member.store_id,
            # A member who removed their guide is the store's to win back: anyone may claim it.
            assignee_id=None if rule.trigger == "contact_lost" else Member.guide_id,
            owner_id=Member.id,
            title=step["title"],
            brief=step.get("brief", ""),
            starts_at=local_time(day, rule.window_start, zone),
            due_at=local_time(
                day + timedelta(days=step.get("due_days", 1) - 1), rule.window_end, zone
            ),
            material_id=rule.suggested_material_id,
            reply_id=rule.suggested_reply_id,
            sop_rule_id=rule.id,
            now=now,
        )
    ).where(who)
    created = insert_ignoring_duplicates(session, Task, TASK_COLUMNS, rows)
    if created:
        task_id = literal(id_prefix, String) + Member.id
        insert_ignoring_duplicates(
            session,
            TaskTarget,
            TARGET_COLUMNS,
            select(
                task_id + Member.id,
                literal(rule.tenant_id, String),
                task_id,
                Member.id,
                literal(now, UTCDateTime()),
            ).where(who),
        )
        log_generated(session, rule.tenant_id, Task.id.in_(select(task_id).where(who)))
    return created


def _calendar_day(session, tenant_id: str, day: date, zone, now) -> int:
    created = 0
    items = session.scalars(
        select(CalendarItem).where(CalendarItem.tenant_id == tenant_id, CalendarItem.day == day)
    ).all()
    for item in items:
        rows = select(
            *task_row_select(
                tenant_id=tenant_id,
                source="calendar",
                key_prefix=f"calendar:{item.id}:",
                id_prefix=item.id,
                store_id=Store.id,
                assignee_id=None,
                owner_id=Store.id,
                title=item.title,
                brief=_calendar_brief(item),
                starts_at=local_time(day, CALENDAR_WINDOW[0], zone),
                due_at=local_time(day, CALENDAR_WINDOW[1], zone),
                material_id=item.material_id,
                reply_id=item.reply_id,
                calendar_item_id=item.id,
                created_by=item.created_by,
                now=now,
            )
        ).where(Store.id.in_(target_stores(tenant_id, item.target)))
        inserted = insert_ignoring_duplicates(session, Task, TASK_COLUMNS, rows)
        if inserted:
            log_generated(session, tenant_id, Task.calendar_item_id == item.id)
        created += inserted
    return created


def _calendar_brief(item: CalendarItem) -> str:
    extras = [
        f"优惠券: {item.coupon}" if item.coupon else "",
        f"社群: {item.community_groups}" if item.community_groups else "",
    ]
    return "\n".join([item.brief, *[e for e in extras if e]]).strip()


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
