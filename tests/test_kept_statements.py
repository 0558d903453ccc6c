"""Statements built once per actor shape and kept (policy.Actor.parametric,
pagination.KeptPage, statements.Prebuilt.orm) answer exactly what the same read rule
gives when built with the actor's own ids: every page of quick replies, the material
library and the inbox, for staff of every role, store and tenant.

The lists' behaviour over HTTP (scoping, cursors, ETags) is in test_replies.py,
test_materials.py, test_inbox.py and test_scoping.py; those run the kept statements too.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from guideapp import policy
from guideapp.changelog.scopes import scopes_followed, scopes_followed_in_sql
from guideapp.db import utcnow
from guideapp.materials import service as materials
from guideapp.materials.models import Material
from guideapp.members import service as members
from guideapp.members.models import Member
from guideapp.org.models import Staff
from guideapp.pagination import paginate
from guideapp.policy.actor import Actor
from guideapp.replies import service as replies
from guideapp.replies.models import QuickReply
from guideapp.tasks import inbox
from guideapp.tasks.models import Task
from tests.factories import make_task


def test_a_rule_that_formats_an_actor_id_in_python_refuses_to_build():
    """An f-string of a bound id would build a statement that matches nothing, silently."""
    shape = ("guide", False, False)
    with pytest.raises(TypeError, match="bound at execution"):
        scopes_followed(Actor.parametric(shape))
    spelt = scopes_followed_in_sql(Actor.parametric(shape))
    assert all(not isinstance(scope, str) for scope in spelt)
    # An id the shape says is absent is a plain None, as a real actor's.
    assert Actor.parametric(("hq_admin", True, True)).store_id is None


def test_an_actors_bound_values_are_its_ids():
    actor = Actor(staff_id="g", tenant_id="t", role="guide", store_id="s", region_id=None)
    assert actor.shape == ("guide", False, True)
    assert actor.bound_values() == {
        "actor_staff_id": "g",
        "actor_tenant_id": "t",
        "actor_store_id": "s",
    }


def _content(session, staff: list[Staff], draw) -> None:
    """Replies and materials of every level by staff of every role, some expired or
    archived, tasks in every bucket, owned and in stores' pools."""
    now = utcnow()
    for person in staff:
        actor = Actor.for_staff(person)
        if draw(st.booleans()):
            reply = replies.create_reply(
                session,
                actor=actor,
                data={"scene": "greeting", "title": f"r {person.phone}", "body": "您好"},
            )
            reply.usage_count = draw(st.integers(0, 3))
        if draw(st.booleans()):
            window = draw(st.sampled_from([(None, None), (-2, -1), (-1, 1), (1, 2)]))
            starts, ends = (None if d is None else now + timedelta(days=d) for d in window)
            materials.create_material(
                session,
                actor=actor,
                data={
                    "kind": "text",
                    "title": f"m {person.phone}",
                    "body": "新品",
                    "valid_from": starts,
                    "valid_to": ends,
                    "archived": draw(st.booleans()) and draw(st.booleans()),
                    "target": {"all": True},
                    **({"level": "store"} if person.role == "store_manager" else {}),
                },
            )
        if person.store_id and draw(st.booleans()):
            task = make_task(
                session, person.store, assignee=draw(st.sampled_from([person.id, None]))
            )
            starts_in, due_in, state = draw(
                st.sampled_from(
                    [(-1, 1, "open"), (-3, -1, "open"), (1, 2, "open"), (-1, 1, "done")]
                )
            )
            task.starts_at, task.due_at = (
                now + timedelta(days=starts_in),
                now + timedelta(days=due_in),
            )
            if state == "done":
                task.state, task.completed_at = (
                    "done",
                    now - timedelta(minutes=draw(st.integers(0, 9))),
                )
    session.flush()


def _walk(page_of) -> list[str]:
    """Every id over every page, following the cursors."""
    ids, cursor = [], None
    for _ in range(500):  # more pages than any list here has rows: a cursor went round
        page = page_of(cursor)
        ids += [row.id for row in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the cursors never reached a last page")


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_kept_statements_answer_as_the_rule_built_with_the_actors_own_ids(session, data):
    staff = list(session.scalars(select(Staff).where(Staff.state == "active").order_by(Staff.id)))
    draw = data.draw
    with session.begin_nested() as scratch:
        _content(session, draw(st.lists(st.sampled_from(staff), max_size=12)), draw)
        limit = draw(st.integers(1, 4))
        for person in draw(st.lists(st.sampled_from(staff), min_size=1, max_size=4)):
            actor = Actor.for_staff(person)
            _compare_replies(session, actor, limit)
            _compare_materials(session, actor, limit, every=draw(st.booleans()))
            _compare_inbox(session, actor, limit)
            _compare_members(session, actor, draw(st.integers(40, 200)))  # 2,400 in the demo
        scratch.rollback()


def _compare_replies(session, actor, limit):
    kept = _walk(lambda c: replies.list_replies(session, actor=actor, limit=limit, cursor=c))
    built = _walk(
        lambda c: paginate(
            session,
            policy.scoped_select(actor, QuickReply),
            [QuickReply.usage_count, QuickReply.id],
            limit=limit,
            cursor=c,
            descending=True,
        )
    )
    assert kept == built


def _compare_materials(session, actor, limit, *, every):
    kept = _walk(
        lambda c: materials.list_materials(
            session, actor=actor, limit=limit, cursor=c, include_inactive=every
        )
    )
    stmt = policy.scoped_select(actor, Material)
    if not (every and (actor.is_hq or actor.is_manager)):
        stmt = stmt.where(materials.currently_valid(utcnow()))
    built = _walk(
        lambda c: paginate(
            session,
            stmt,
            [Material.created_at, Material.id],
            limit=limit,
            cursor=c,
            descending=True,
        )
    )
    assert kept == built


def _compare_members(session, actor, limit):
    """The whole book a member list opens on, as records, shown as present() shows the
    loaded members (phones masked alike)."""
    kept, built = [], []
    _walk(lambda c: _collect(kept, members.search(session, actor=actor, limit=limit, cursor=c)))
    book = select(Member).where(Member.state == "active", policy.visible(actor, Member))

    def built_page(cursor):
        page = paginate(session, book, [Member.id], limit=limit, cursor=cursor)
        return _collect(
            built, {**page, "items": [members.present(actor, m) for m in page["items"]]}
        )

    _walk(built_page)
    assert kept == built


def _collect(into: list, page: dict) -> dict:
    into += page["items"]
    return {
        "items": [_Id(item["id"]) for item in page["items"]],
        "next_cursor": page["next_cursor"],
    }


class _Id:
    def __init__(self, id):
        self.id = id


def _compare_inbox(session, actor, limit):
    now = utcnow()
    mine = policy.scoped_select(actor, Task)
    if actor.is_guide:
        mine = mine.where(Task.assignee_id == actor.staff_id)
    counts = {b: _compare_bucket(session, actor, mine, b, limit, now) for b in inbox.BUCKETS}
    first = inbox.inbox(session, actor=actor, bucket="today", limit=limit, cursor=None, now=now)
    assert first["counts"] == counts
    pool = policy.scoped_select(actor, Task).where(
        Task.assignee_id.is_(None), inbox.bucket_filter("today", now)
    )
    claimable = list(session.scalars(pool.order_by(Task.due_at, Task.id).limit(20)))
    expected = [t.id for t in claimable] if actor.is_guide else []
    assert [item["task"].id for item in first["claimable"]] == expected


def _compare_bucket(session, actor, mine, bucket, limit, now) -> int:
    kept = _walk(
        lambda c: _items(
            inbox.inbox(session, actor=actor, bucket=bucket, limit=limit, cursor=c, now=now)
        )
    )
    done = bucket == "done"
    keys = [Task.completed_at, Task.id] if done else [Task.due_at, Task.id]
    stmt = mine.where(inbox.bucket_filter(bucket, now))
    built = _walk(lambda c: paginate(session, stmt, keys, limit=limit, cursor=c, descending=done))
    assert kept == built, bucket
    return len(built)


def _items(answer) -> dict:
    tasks = [_Id(item["task"].id) for item in answer["items"]]
    return {"items": tasks, "next_cursor": answer["next_cursor"]}


def test_the_inbox_knows_when_the_clock_moves_a_task(session):
    """The next start or due time of an open task the guide sees (their own or the store's
    pool) bounds how long a kept page stays current."""
    guide = session.scalar(select(Staff).where(Staff.role == "guide").order_by(Staff.id))
    session.execute(update(Task).where(Task.store_id == guide.store_id).values(state="cancelled"))
    now = utcnow()
    actor = Actor.for_staff(guide)
    assert inbox._inbox(session, actor, "today", 5, None, now)[1] == now + inbox.MAX_CACHE_AGE
    pooled = make_task(session, guide.store)  # claimable, falls due in a day
    pooled.starts_at = now + timedelta(seconds=30)
    session.flush()
    assert inbox._inbox(session, actor, "today", 5, None, now)[1] == pooled.starts_at
