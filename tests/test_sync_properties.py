"""Two phones and the REST API in random interleavings converge, and no guide's edit is lost;
a stale push (a record changed on the server since the phone's pull) is refused with 409
and goes through only after a pull."""

import itertools

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from guideapp.members.models import Member, MemberNote
from guideapp.sync.models import SyncRejection
from guideapp.tasks.models import TaskTarget
from tests.conftest import GUIDE, MANAGER
from tests.factories import staff_by_phone
from tests.sync_phone import Phone

COLLEAGUE = "13913775684"
_ids = itertools.count()

steps = st.lists(
    st.one_of(
        st.tuples(st.just("note"), st.sampled_from([0, 1]), st.integers(0, 59)),
        st.tuples(st.just("result"), st.sampled_from([0, 1]), st.integers(0, 59)),
        st.tuples(st.just("rest_note"), st.integers(0, 119)),
        st.tuples(st.just("rest_transfer"), st.integers(0, 119)),
        st.tuples(st.just("rest_cancel"), st.integers(0, 9)),
        st.tuples(st.just("sync"), st.sampled_from([0, 1])),
        st.tuples(st.just("stale"), st.sampled_from([0, 1]), st.integers(0, 59)),
    ),
    min_size=3,
    max_size=14,
)


# No shrinking: each example drives dozens of HTTP calls; a failure prints its plan as is.
@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
@example(plan=[("note", 0, 1), ("stale", 0, 3), ("result", 1, 0), ("stale", 1, 5)])
def test_phones_and_rest_converge(api, session, plan):
    savepoint = session.begin_nested()
    api._tokens.clear()  # logins of an earlier example were rolled back with it
    guides = [staff_by_phone(session, GUIDE), staff_by_phone(session, COLLEAGUE)]
    _campaign_for(api, session)
    phones = [Phone(api, GUIDE), Phone(api, COLLEAGUE)]
    for phone in phones:
        phone.pull()
    edits = []  # (table, record id) the phones made offline
    for step in plan:
        kind = step[0]
        if kind == "note":
            phone = phones[step[1]]
            members = sorted(phone.tables.get("members", {}))
            if members:
                note_id = f"p{next(_ids)}"
                phone.create(
                    "member_notes",
                    {"id": note_id, "body": "离线", "member_id": members[step[2] % len(members)]},
                )
                edits.append(("member_notes", note_id))
        elif kind == "result":
            phone = phones[step[1]]
            targets = sorted(phone.tables.get("task_targets", {}))
            if targets:
                target_id = targets[step[2] % len(targets)]
                phone.update("task_targets", target_id, result="done", note="已联系")
                edits.append(("task_targets", target_id))
        elif kind == "rest_note":
            members = _members_of(session, guides)
            member = members[step[1] % len(members)]
            api.post(MANAGER, f"/api/v1/members/{member.id}/notes", json={"body": "店长"})
        elif kind == "rest_transfer":
            members = _members_of(session, guides)
            member = members[step[1] % len(members)]
            to = guides[1] if member.guide_id == guides[0].id else guides[0]
            api.post(
                MANAGER,
                "/api/v1/members/transfer",
                json={
                    "from_guide_id": member.guide_id,
                    "to_guide_id": to.id,
                    "member_ids": [member.id],
                },
            )
        elif kind == "rest_cancel":
            tasks = api.get(MANAGER, "/api/v1/inbox?limit=50").get_json()["items"]
            if tasks:
                api.post(
                    MANAGER, f"/api/v1/tasks/{tasks[step[1] % len(tasks)]['task']['id']}/cancel"
                )
        elif kind == "stale":
            _stale_push_conflicts(api, session, phones[step[1]], guides[step[1]], step[2])
        else:
            phones[step[1]].sync()
    for _ in range(2):
        for phone in phones:
            phone.sync()
    session.expire_all()
    for phone, guide in zip(phones, guides, strict=True):
        server = set(session.scalars(select(Member.id).where(Member.guide_id == guide.id)))
        assert set(phone.tables["members"]) == server
        assert not any(phone.pending.values())
    for table, record_id in edits:
        kept = session.scalar(
            select(SyncRejection.id).where(
                SyncRejection.table_name == table, SyncRejection.record_id == record_id
            )
        )
        if table == "member_notes":
            assert session.get(MemberNote, record_id) is not None or kept, record_id
        else:
            target = session.get(TaskTarget, record_id)
            assert target.result == "done" or kept, record_id
    savepoint.rollback()


def _stale_push_conflicts(api, session, phone, guide, index):
    """The phone renames a member offline; the manager writes a note on the same member
    (the member changes on the server); the phone pushes without pulling: 409 naming the
    member, nothing of the push applied, again on a second stale try; after a pull the
    same edit goes through."""
    session.expire_all()
    bound = set(session.scalars(select(Member.id).where(Member.guide_id == guide.id)))
    members = sorted(bound & set(phone.tables.get("members", {})))
    if not members:
        return
    member_id = members[index % len(members)]
    name = f"改名{next(_ids)}"
    phone.update("members", member_id, name=name)
    api.post(MANAGER, f"/api/v1/members/{member_id}/notes", json={"body": "店长同时写的"})
    notes = [i for i in phone.pending.get("member_notes", {}) if i in phone.tables["member_notes"]]
    for _ in range(2):
        response = phone.push()
        assert response.status_code == 409, response.get_json()
        assert member_id in response.get_json()["errors"]["members"]
        session.expire_all()
        assert session.get(Member, member_id).name != name
        assert not any(session.get(MemberNote, i) for i in notes)  # nothing was applied
    phone.pull()
    assert phone.push().status_code == 200
    session.expire_all()
    assert session.get(Member, member_id).name == name


def _members_of(session, guides):
    return session.scalars(
        select(Member).where(Member.guide_id.in_([g.id for g in guides])).order_by(Member.id)
    ).all()


def _campaign_for(api, session):
    from tests.factories import store_by_code

    sh001 = store_by_code(session, "SH001")
    created = api.post(
        "13800000001",
        "/api/v1/campaigns",
        json={
            "title": "回访",
            "starts_at": "2026-01-01T00:00:00Z",
            "due_at": "2030-01-01T00:00:00Z",
            "target": {"store_ids": [sh001.id]},
            "segment": {"stages": ["customer", "regular"]},
            "distribution": "auto",
        },
    ).get_json()
    assert "id" in created, created
    api.post("13800000001", f"/api/v1/campaigns/{created['id']}/publish?wait=true")
