"""The calendar occasions of coupon rules, from the scheduler tick: birthday, joining,
reaching a tier, a win-back after N silent days.

The tick names the local days it processed (from the last tick's day through today,
bounded after downtime); each rule goes through each of them on or after the day it was
made. Days gone by issue whenever the tick runs; today only from the rule's window_start,
so a 3 a.m. tick leaves today's birthdays to a tick in business hours (which goes through
today again). Occasion keys depend on the day, never on the time of the tick.
"""

from __future__ import annotations

from calendar import isleap
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, literal, select
from sqlalchemy.orm import Session

from guideapp.coupons import issuance
from guideapp.coupons.automation import active_rules, issuable, rule_issue
from guideapp.coupons.models import CouponRule
from guideapp.db import UTCDateTime
from guideapp.members.models import Member
from guideapp.org.models import Tenant

DAY_OCCASIONS = ("birthday", "member_joined", "silent", "tier_changed")


def on_scheduler_tick(
    session: Session, *, tenant_id: str, now: datetime, days: tuple[date, date], **_
) -> None:
    """tasks.scheduler_ticked: issue the day occasions of every local day in `days`."""
    rules = active_rules(session, tenant_id, DAY_OCCASIONS)
    if not rules:
        return
    zone = ZoneInfo(session.get_one(Tenant, tenant_id).timezone)
    for rule in rules:
        due = due_days(rule, days, now, zone)
        if not due:
            continue
        template = issuance.lock_template(
            session, tenant_id=tenant_id, template_id=rule.template_id
        )
        if not issuable(template, now):
            continue
        for day in due:
            where, occasion = occasion_of(rule, day, zone)
            member_ids = session.scalars(
                select(Member.id)
                .where(Member.tenant_id == tenant_id, Member.state == "active", where)
                .order_by(Member.id)
            ).all()
            if member_ids:
                how = rule_issue(rule, occasion)
                issuance.issue(session, template=template, member_ids=member_ids, how=how, now=now)


def due_days(rule: CouponRule, days: tuple[date, date], now: datetime, zone: ZoneInfo):
    first, today = days
    day = max(first, rule.created_at.astimezone(zone).date())
    hour, minute = map(int, rule.window_start.split(":"))
    due = []
    while day <= today:
        if day == today and now < datetime.combine(day, time(hour, minute), zone):
            break  # before business hours: a later tick goes through today again
        due.append(day)
        day += timedelta(days=1)
    return due


def occasion_of(rule: CouponRule, day: date, zone: ZoneInfo):
    """(members whose occasion falls on the local `day`, the occasion's key)."""
    if rule.occasion == "birthday":
        mmdd = [day.strftime("%m%d")]
        if (day.month, day.day) == (2, 28) and not isleap(day.year):
            mmdd.append("0229")  # leap-day birthdays are celebrated on the 28th
        return Member.birthday_mmdd.in_(mmdd), f"birthday:{day.year}"
    if rule.occasion == "member_joined":
        return _in_day(Member.joined_at, day, zone), "joined"
    if rule.occasion == "silent":
        # Last seen (last order, else joining) exactly silent_days before: once per silence.
        seen = day - timedelta(days=int(rule.params["silent_days"]))
        last_seen = func.coalesce(Member.last_order_at, Member.joined_at)
        return _in_day(last_seen, seen, zone), f"silent:{seen.isoformat()}"
    if rule.occasion == "tier_changed":
        tier = rule.params["tier"]
        reached = and_(Member.tier == tier, _in_day(Member.tier_since, day, zone))
        return reached, f"tier:{tier}"  # once per tier, however often it is reached
    raise ValueError(f"not a day occasion: {rule.occasion}")


def _in_day(column, day: date, zone: ZoneInfo):
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return and_(column >= literal(start, UTCDateTime()), column < literal(end, UTCDateTime()))
