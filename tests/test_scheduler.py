"""The scheduler: exactly once, catching up after downtime, in the tenant's time zone."""

import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp.auth.scope import Actor
from guideapp.db import make_engine, transaction, utcnow
from guideapp.demo import load_demo
from guideapp.members.binding import bind
from guideapp.members.identity import create_member
from guideapp.members.models import Member
from guideapp.org.models import Tenant
from guideapp.tasks import plans
from guideapp.tasks.models import CalendarItem, SchedulerRun, Task, TaskTarget
from guideapp.tasks.scheduler import tick
from tests.conftest import FIXTURES, GUIDE, HQ
from tests.databases import backends, run_in_threads, scratch_database
from tests.factories import staff_by_phone, store_by_code

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULE_371 = {
    "name": "371",
    "trigger": "member_joined",
    "params": {},
    "steps": [
        {"days": 3, "title": "第3天回访"},
        {"days": 7, "title": "第7天邀约"},
        {"days": 30, "title": "首月关怀"},
    ],
}


def _local(day_offset, hour, minute=0):
    base = datetime.now(SHANGHAI).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return (base + timedelta(days=day_offset)).astimezone(timezone.utc)


def _rule(session, **overrides):
    hq = staff_by_phone(session, HQ)
    return plans.create_rule(session, actor=Actor.for_staff(hq), data={**RULE_371, **overrides})


def _new_member(session, joined_at, phone, **fields):
    guide = staff_by_phone(session, GUIDE)
    member = create_member(
        session,
        tenant_id=guide.tenant_id,
        phone=phone,
        name="新会员",
        source_channel="store_scan",
        joined_at=joined_at,
        **fields,
    )
    bind(session, member=member, guide=guide, reason="recruited")
    return member


def _sop_tasks(session, rule, members=None):
    """The rule's tasks, for the given members only (the demo tenant has others joining)."""
    stmt = select(Task).where(Task.sop_rule_id == rule.id).order_by(Task.dedupe_key)
    if members is not None:
        stmt = stmt.where(
            Task.id.in_(
                select(TaskTarget.task_id).where(TaskTarget.member_id.in_([m.id for m in members]))
            )
        )
    return session.scalars(stmt).all()


def test_371_creates_each_step_once_on_its_local_day(session):
    rule = _rule(session)
    tenant_id = rule.tenant_id
    # Joined 01:30 Shanghai time: the UTC date is the day before; day 3 counts from Shanghai.
    member = _new_member(session, _local(0, 1, 30), "13511110001")
    for offset in (1, 2, 3, 4):
        tick(session, tenant_id=tenant_id, now=_local(offset, 8))
    tasks = _sop_tasks(session, rule, [member])
    assert len(tasks) == 1 and tasks[0].assignee_id == member.guide_id
    starts = tasks[0].starts_at.astimezone(SHANGHAI)
    assert starts.date() == (datetime.now(SHANGHAI) + timedelta(days=3)).date()
    assert (starts.hour, starts.minute) == (10, 0)  # business hours, never 2 a.m.
    targets = session.scalars(select(TaskTarget).where(TaskTarget.task_id == tasks[0].id)).all()
    assert [t.member_id for t in targets] == [member.id]
    for offset in (3, 3, 4):
        tick(session, tenant_id=tenant_id, now=_local(offset, 20))
    assert len(_sop_tasks(session, rule, [member])) == 1


def test_a_task_made_at_2am_surfaces_at_10am(api, session):
    rule = _rule(session, steps=[{"days": 0, "title": "入会当天欢迎"}])
    member = _new_member(session, _local(0, 0, 30), "13511110002")
    tick(session, tenant_id=rule.tenant_id, now=_local(0, 2))
    task = _sop_tasks(session, rule, [member])[0]
    assert task.starts_at == _local(0, 10) and task.due_at == _local(0, 21)


def test_catch_up_after_downtime_equals_ticking_daily(session):
    rule = _rule(session)
    members = [_new_member(session, _local(-3 + i, 12), f"135222200{i:02d}") for i in range(6)]
    daily = session.begin_nested()
    for offset in range(0, 8):
        tick(session, tenant_id=rule.tenant_id, now=_local(offset, 11))
    every_day = [t.dedupe_key for t in _sop_tasks(session, rule)]
    mine = [t.dedupe_key for t in _sop_tasks(session, rule, members)]
    daily.rollback()
    tick(session, tenant_id=rule.tenant_id, now=_local(0, 11))
    tick(session, tenant_id=rule.tenant_id, now=_local(7, 11))  # a week of downtime
    assert [t.dedupe_key for t in _sop_tasks(session, rule)] == every_day
    every_day = mine
    assert len(every_day) == 6 + 4  # six day-3 visits; day-7 invitations for four of them
    last = session.scalars(select(SchedulerRun).order_by(SchedulerRun.started_at.desc())).first()
    assert last.from_day < last.through_day


def test_birthday_rule_fires_on_the_birthday_and_feb_29_on_the_28th(session):
    rule = _rule(
        session, name="生日关怀", trigger="birthday", steps=[{"days": 0, "title": "生日祝福"}]
    )
    today = datetime.now(SHANGHAI).date()
    target_day = today + timedelta(days=2)
    birthday = target_day.replace(year=1990)
    member = _new_member(session, _local(-400, 12), "13533330001", birthday=birthday)
    tick(session, tenant_id=rule.tenant_id, now=_local(1, 9))
    assert not [t for t in _sop_tasks(session, rule) if member.id in t.dedupe_key]
    tick(session, tenant_id=rule.tenant_id, now=_local(2, 9))
    assert [t for t in _sop_tasks(session, rule) if member.id in t.dedupe_key]


def test_calendar_item_reaches_target_stores_on_its_day(session):
    hq = staff_by_phone(session, HQ)
    sh001 = store_by_code(session, "SH001")
    day = (datetime.now(SHANGHAI) + timedelta(days=1)).date()
    item = plans.plan_day(
        session,
        actor=Actor.for_staff(hq),
        data={
            "day": day,
            "title": "周二海报",
            "target": {"store_ids": [sh001.id]},
            "coupon": "满300减50",
        },
    )
    tick(session, tenant_id=hq.tenant_id, now=_local(0, 12))
    assert not session.scalars(select(Task).where(Task.calendar_item_id == item.id)).all()
    tick(session, tenant_id=hq.tenant_id, now=_local(1, 8))
    tasks = session.scalars(select(Task).where(Task.calendar_item_id == item.id)).all()
    assert [t.store_id for t in tasks] == [sh001.id] and "满300减50" in tasks[0].brief
    assert isinstance(session.get(CalendarItem, item.id).day, type(day))


@pytest.mark.parametrize("backend", backends())
def test_concurrent_ticks_create_nothing_twice(backend, tmp_path_factory):
    from alembic import command

    from guideapp.migrations import alembic_config

    with scratch_database(backend, tmp_path_factory) as url:
        command.upgrade(alembic_config({}, url=url), "head")
        engine = make_engine(url)
        with Session(engine) as s, transaction(s):
            load_demo(s, FIXTURES)
            rule_id = _rule(s).id
            for i in range(20):
                _new_member(s, _local(-3, 12), f"135444400{i:02d}")
            tenant_id = s.scalar(select(Tenant.id))
        barrier, errors = threading.Barrier(4), []

        def run():
            try:
                barrier.wait()
                with Session(engine) as s, transaction(s):
                    tick(s, tenant_id=tenant_id, now=utcnow())
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        run_in_threads(run, 4)
        assert not errors, errors
        with Session(engine) as s:
            count = s.scalar(
                select(func.count())
                .select_from(Task)
                .where(
                    Task.sop_rule_id == rule_id,
                    Task.id.in_(
                        select(TaskTarget.task_id)
                        .join(Member, Member.id == TaskTarget.member_id)
                        .where(Member.phone.like("135444400%"))
                    ),
                )
            )
            runs = s.scalar(select(func.count()).select_from(SchedulerRun))
        assert count == 20 and runs == 4
        engine.dispose()
