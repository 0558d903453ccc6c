"""Merging members: any sequence of merges keeps points, orders, notes and tags whole."""

from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from guideapp.policy.actor import Actor
from guideapp.members import merge, points, service, tags
from guideapp.members.identity import create_member
from guideapp.members.models import Member, MemberNote, MemberTag, Order, Tag
from guideapp.members.orders import ingest_order
from tests.conftest import GUIDE, HQ
from tests.factories import staff_by_phone

member_specs = st.lists(
    st.fixed_dictionaries(
        {
            "orders": st.integers(0, 3),
            "points": st.integers(0, 500),
            "tags": st.sets(st.integers(0, 5), max_size=4),
            "notes": st.integers(0, 2),
        }
    ),
    min_size=2,
    max_size=5,
)


def _build(session, hq, guide, specs, tag_rows, run):
    members = []
    for i, spec in enumerate(specs):
        member = create_member(
            session,
            tenant_id=hq.tenant_id,
            phone=f"1350{run:03d}{i:04d}",
            name=f"m{i}",
            source_channel="pos",
        )
        for j in range(spec["orders"]):
            ingest_order(
                session,
                tenant_id=hq.tenant_id,
                data={
                    "channel": "pos",
                    "order_no": f"M{run}-{i}-{j}",
                    "amount_fen": 1000 + j,
                    "ordered_at": datetime(2026, 1, 1 + j, tzinfo=timezone.utc),
                    "phone": member.phone,
                },
            )
        if spec["points"]:
            points.add_points(session, member=member, kind="earn", points=spec["points"])
        for t in spec["tags"]:
            tags.tag_member(session, actor=None, member=member, tag=tag_rows[t])
        for _ in range(spec["notes"]):
            service.add_note(session, actor=Actor.for_staff(hq), member_id=member.id, body="n")
        members.append(member)
    return members


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=member_specs,
    picks=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=6),
    run=st.integers(0, 999),
)
def test_any_merge_sequence_keeps_totals(session, specs, picks, run):
    hq, guide = staff_by_phone(session, HQ), staff_by_phone(session, GUIDE)
    actor = Actor.for_staff(hq)
    tag_rows = session.scalars(
        select(Tag).where(Tag.tenant_id == hq.tenant_id).order_by(Tag.id).limit(6)
    ).all()
    savepoint = session.begin_nested()
    members = _build(session, hq, guide, specs, tag_rows, run)
    ids = [m.id for m in members]
    expected_tags = {
        m.id: {tag_rows[t].id for t in spec["tags"]} for m, spec in zip(members, specs, strict=True)
    }
    owner = {mid: mid for mid in ids}  # each original id -> who holds its things now

    def totals():
        return (
            sum(points.balance(session, mid) for mid in set(owner.values())),
            session.scalar(
                select(func.count())
                .select_from(Order)
                .where(Order.member_id.in_(set(owner.values())))
            ),
            session.scalar(
                select(func.count())
                .select_from(MemberNote)
                .where(MemberNote.member_id.in_(set(owner.values())))
            ),
        )

    before = totals()
    for a, b in picks:
        survivor, merged = ids[a % len(ids)], ids[b % len(ids)]
        survivor, merged = owner[survivor], owner[merged]
        if survivor == merged:
            continue
        merge.merge_members(session, actor=actor, survivor_id=survivor, merged_id=merged)
        for original, holder in owner.items():
            if holder == merged:
                owner[original] = survivor
        expected_tags[survivor] |= expected_tags.pop(merged)
    assert totals() == before
    for holder, expected in expected_tags.items():
        have = set(session.scalars(select(MemberTag.tag_id).where(MemberTag.member_id == holder)))
        assert have == expected
    for original, holder in owner.items():
        resolved = service.get_member(session, actor=actor, member_id=original)
        assert resolved.id == holder and resolved.state == "active"
    savepoint.rollback()


def test_merge_carries_phone_binding_and_refuses_self(api, session):
    hq = staff_by_phone(session, HQ)
    guide = staff_by_phone(session, GUIDE)
    bound = session.scalar(select(Member).where(Member.guide_id == guide.id))
    lonely = create_member(
        session, tenant_id=hq.tenant_id, unionid="oU-dup", name="", source_channel="tmall"
    )
    response = api.post(HQ, f"/api/v1/members/{lonely.id}/merge", json={"merged_id": bound.id})
    assert response.status_code == 200, response.get_json()
    session.expire_all()
    survivor = session.get(Member, lonely.id)
    assert survivor.guide_id == guide.id and survivor.phone and survivor.name
    card = api.get(HQ, f"/api/v1/members/{bound.id}/card").get_json()
    assert card["member"]["id"] == lonely.id  # the merged id resolves to the survivor
    assert (
        api.post(
            HQ, f"/api/v1/members/{lonely.id}/merge", json={"merged_id": lonely.id}
        ).status_code
        == 422
    )
    assert (
        api.post(HQ, f"/api/v1/members/{lonely.id}/merge", json={"merged_id": bound.id}).status_code
        == 409
    )  # already merged
