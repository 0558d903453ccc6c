"""The scheduler: exactly once, catching up after downtime, in the tenant's time zone."""

import threading
from types import SimpleNamespace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp.policy.actor import Actor
from guideapp.db import make_engine, transaction
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


# Ticks come at any time of day (cron every few minutes, a manual run at night): the tests
# tick at varying hours and minutes, so a task key that depends on the time of the tick
# (rather than on the local day) makes a second task and fails them.
TIME_OF_DAY = st.tuples(st.integers(0, 23), st.integers(0, 59))


def _at(i: int) -> tuple[int, int]:
    """A different (hour, minute) for each i, spread over the day."""
    return (7 * i + 3) % 24, (17 * i + 11) % 60


def _processed(run, day) -> None:
    """The run went through `day` (a re-tick that processes no day proves nothing)."""
    assert run.from_day <= day <= run.through_day, (run.from_day, run.through_day, day)


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


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(ticks=[(8, 0), (8, 0), (8, 0), (20, 0), (0, 0), (23, 59)])
@given(ticks=st.lists(TIME_OF_DAY, min_size=6, max_size=6))
def test_371_creates_each_step_once_on_its_local_day(session, ticks):
    example_run = session.begin_nested()
    try:
        _check_371(session, ticks)
    finally:
        example_run.rollback()


def _check_371(session, ticks):
    rule = _rule(session)
    tenant_id = rule.tenant_id
    # Joined 01:30 Shanghai time: the UTC date is the day before; day 3 counts from Shanghai.
    member = _new_member(session, _local(0, 1, 30), "13511110001")
    for offset, (hour, minute) in zip((1, 2, 3), ticks[:3], strict=True):
        tick(session, tenant_id=tenant_id, now=_local(offset, hour, minute))
    tasks = _sop_tasks(session, rule, [member])
    assert len(tasks) == 1 and tasks[0].assignee_id == member.guide_id
    starts = tasks[0].starts_at.astimezone(SHANGHAI)
    day_3 = (datetime.now(SHANGHAI) + timedelta(days=3)).date()
    assert starts.date() == day_3
    assert (starts.hour, starts.minute) == (10, 0)  # business hours, never 2 a.m.
    targets = session.scalars(select(TaskTarget).where(TaskTarget.task_id == tasks[0].id)).all()
    assert [t.member_id for t in targets] == [member.id]
    # Ticking again, on day 3 itself and the day after, goes through day 3 again: nothing new.
    for offset, (hour, minute) in zip((3, 3, 4), ticks[3:], strict=True):
        run = tick(session, tenant_id=tenant_id, now=_local(offset, hour, minute))
        _processed(run, day_3)
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
        tick(session, tenant_id=rule.tenant_id, now=_local(offset, *_at(offset)))
    every_day = [t.dedupe_key for t in _sop_tasks(session, rule)]
    mine = [t.dedupe_key for t in _sop_tasks(session, rule, members)]
    daily.rollback()
    tick(session, tenant_id=rule.tenant_id, now=_local(0, *_at(8)))
    downtime = tick(session, tenant_id=rule.tenant_id, now=_local(7, *_at(9)))  # a week off
    assert [t.dedupe_key for t in _sop_tasks(session, rule)] == every_day
    assert len(mine) == 6 + 4  # six day-3 visits; day-7 invitations for four of them
    assert (downtime.through_day - downtime.from_day).days == 7
    # Ticking again later the same day goes through that day again and creates nothing.
    again = tick(session, tenant_id=rule.tenant_id, now=_local(7, *_at(10)))
    _processed(again, downtime.through_day)
    assert [t.dedupe_key for t in _sop_tasks(session, rule)] == every_day


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
    made = [t.id for t in _sop_tasks(session, rule) if member.id in t.dedupe_key]
    assert len(made) == 1
    for hour, minute in ((0, 1), (17, 42), (23, 58)):
        _processed(tick(session, tenant_id=rule.tenant_id, now=_local(2, hour, minute)), target_day)
    assert [t.id for t in _sop_tasks(session, rule) if member.id in t.dedupe_key] == made


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
    for hour, minute in ((0, 0), (13, 37), (23, 59)):
        _processed(tick(session, tenant_id=hq.tenant_id, now=_local(1, hour, minute)), day)
    again = session.scalars(select(Task).where(Task.calendar_item_id == item.id)).all()
    assert [t.id for t in again] == [t.id for t in tasks]


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
        # Four ticks of the same local day at different times: each goes through that day.
        times = [_local(0, h, m) for h, m in ((0, 5), (9, 30), (15, 45), (23, 55))]
        times_day = datetime.now(SHANGHAI).date()
        runs = []

        def run():
            try:
                now = times.pop()
                barrier.wait()
                with Session(engine) as s, transaction(s):
                    done = tick(s, tenant_id=tenant_id, now=now)
                    runs.append(
                        SimpleNamespace(from_day=done.from_day, through_day=done.through_day)
                    )
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
            recorded = s.scalar(select(func.count()).select_from(SchedulerRun))
        assert count == 20 and recorded == 4
        for done in runs:
            _processed(done, times_day)
        engine.dispose()
