"""Member cards through the API: search, masking, notes, tags, binding lock, transfer,
orders (payment is membership), refunds, points, lifecycle."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from guideapp.db import utcnow
from guideapp.members.models import Binding, Member, PointsEntry
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE
from tests.factories import member_of, staff_by_phone

COLLEAGUE = "13913775684"  # another guide of SH001


def test_guide_searches_own_members(api, session):
    me = api.get(GUIDE, "/api/v1/me").get_json()["staff"]
    page = api.get(GUIDE, "/api/v1/members?limit=100").get_json()
    mine = [m for m in page["items"] if m["guide_id"] == me["id"]]
    pool = [m for m in page["items"] if m["guide_id"] is None]  # tests/factories.py POOL_STORES
    assert len(mine) == 60 and len(pool) == 2 and len(mine) + len(pool) == len(page["items"])
    assert {m["store_id"] for m in pool} == {me["store_id"]}
    member = mine[0]
    tail = member["phone"][-4:]
    by_tail = api.get(GUIDE, f"/api/v1/members?phone_tail={tail}").get_json()["items"]
    assert member["id"] in [m["id"] for m in by_tail]
    by_name = api.get(GUIDE, f"/api/v1/members?q={member['name'][1:]}").get_json()["items"]
    assert member["id"] in [m["id"] for m in by_name]


def test_birthday_and_silence_filters(api):
    items = api.get(GUIDE, "/api/v1/members?birthday_month=3&limit=100").get_json()["items"]
    assert all(m["birthday"][5:7] == "03" for m in items)
    silent = api.get(GUIDE, "/api/v1/members?silent_days=365&limit=100").get_json()["items"]
    cutoff = (utcnow() - timedelta(days=365)).isoformat()
    for m in silent:
        assert (m["last_order_at"] or m["joined_at"]) < cutoff


def test_bad_search_input_is_a_field_error(api):
    assert api.get(GUIDE, "/api/v1/members?phone_tail=12").status_code == 422
    assert api.get(GUIDE, "/api/v1/members?birthday_month=13").status_code == 422
    assert api.get(GUIDE, "/api/v1/members?stage=vip").status_code == 422


def test_phone_is_masked_for_everyone_but_the_bound_guide_manager_and_hq(api, session):
    member = member_of(session, GUIDE)
    member.guide_id = None  # into the store's pool: colleagues see it, masked
    session.flush()
    colleague = api.get(COLLEAGUE, f"/api/v1/members/{member.id}/card").get_json()
    assert colleague["member"]["phone"] == member.phone[:3] + "****" + member.phone[-4:]
    for phone in (MANAGER, HQ):
        card = api.get(phone, f"/api/v1/members/{member.id}/card").get_json()
        assert card["member"]["phone"] == member.phone


def test_card_has_everything_a_guide_needs(api, session):
    member = member_of(session, GUIDE)
    card = api.get(GUIDE, f"/api/v1/members/{member.id}/card").get_json()
    assert card["member"]["phone"] == member.phone
    assert card["bound_guide"]["name"] == "张导购" and card["bound_store"]["code"] == "SH001"
    assert {
        "points_balance",
        "total_spend_fen",
        "tags",
        "recent_orders",
        "notes",
        "care_dates",
        "open_tasks",
    } <= set(card)
    assert card["care_dates"] and card["care_dates"][0]["date"] >= utcnow().date().isoformat()


def test_notes_and_tags(api, session):
    member = member_of(session, GUIDE)
    note = api.post(GUIDE, f"/api/v1/members/{member.id}/notes", json={"body": "想买跑鞋"})
    assert note.status_code == 201
    tags = api.get(GUIDE, "/api/v1/tags?limit=200").get_json()["items"]
    tag_id = tags[0]["id"]
    first = api.post(GUIDE, f"/api/v1/members/{member.id}/tags", json={"tag_ids": [tag_id]})
    again = api.post(GUIDE, f"/api/v1/members/{member.id}/tags", json={"tag_ids": [tag_id]})
    assert first.get_json() == again.get_json()
    card = api.get(GUIDE, f"/api/v1/members/{member.id}/card").get_json()
    assert card["notes"][0]["body"] == "想买跑鞋"
    assert tag_id in [t["id"] for g in card["tags"] for t in g["tags"]]
    assert (
        api.client.delete(
            f"/api/v1/members/{member.id}/tags/{tag_id}", headers=api.headers(GUIDE)
        ).status_code
        == 204
    )
    bad = api.post(GUIDE, f"/api/v1/members/{member.id}/tags", json={"tag_ids": ["nope"]})
    assert bad.status_code == 422 and "tag_ids" in bad.get_json()["errors"]


def test_questionnaire_code_book_maps_answers_to_tags(api, session):
    member = member_of(session, GUIDE)
    ok = api.post(
        GUIDE,
        f"/api/v1/members/{member.id}/questionnaire",
        json={"questionnaire": "入会问卷", "answers": {"运动频率": "3"}},
    )
    names = [t["name"] for g in ok.get_json() for t in g["tags"]]
    assert ok.status_code == 200 and "每周3次以上" in names
    bad = api.post(
        GUIDE,
        f"/api/v1/members/{member.id}/questionnaire",
        json={"questionnaire": "入会问卷", "answers": {"运动频率": "9"}},
    )
    assert bad.status_code == 422 and "运动频率" in bad.get_json()["errors"]["answers"]


def test_binding_lock_keeps_other_guides_out_until_it_ends(api, session):
    member = member_of(session, GUIDE)
    colleague = staff_by_phone(session, COLLEAGUE)
    member.binding_locked_until = utcnow() + timedelta(days=10)
    session.flush()
    locked = api.post(
        MANAGER, f"/api/v1/members/{member.id}/binding", json={"guide_id": colleague.id}
    )
    assert locked.status_code == 409
    member.binding_locked_until = utcnow() - timedelta(days=1)
    session.flush()
    rebound = api.post(
        MANAGER, f"/api/v1/members/{member.id}/binding", json={"guide_id": colleague.id}
    )
    assert rebound.status_code == 200 and rebound.get_json()["guide_id"] == colleague.id
    history = session.scalars(
        select(Binding).where(Binding.member_id == member.id).order_by(Binding.started_at)
    ).all()
    assert len(history) >= 2 and history[-2].ended_at is not None
    assert history[-1].ended_at is None and history[-1].reason == "rebind"


def test_guide_claims_from_pool_only(api, session):
    member = member_of(session, COLLEAGUE)
    me = staff_by_phone(session, GUIDE)
    assert (
        api.post(
            GUIDE, f"/api/v1/members/{member.id}/binding", json={"guide_id": me.id}
        ).status_code
        == 404
    )  # not mine, not pool
    member.guide_id = None
    session.flush()
    assert (
        api.post(
            GUIDE, f"/api/v1/members/{member.id}/binding", json={"guide_id": me.id}
        ).status_code
        == 200
    )


def test_transfer_moves_members_in_bulk_with_history(api, session):
    me, colleague = staff_by_phone(session, GUIDE), staff_by_phone(session, COLLEAGUE)
    result = api.post(
        MANAGER,
        "/api/v1/members/transfer",
        json={"from_guide_id": me.id, "to_guide_id": colleague.id},
    )
    assert result.status_code == 200 and result.get_json()["moved"] == 60
    session.expire_all()
    assert (
        session.scalar(select(func.count()).select_from(Member).where(Member.guide_id == me.id))
        == 0
    )
    moved = session.scalars(
        select(Binding).where(Binding.transfer_id == result.get_json()["transfer_id"])
    ).all()
    assert len(moved) == 60 and all(b.guide_id == colleague.id for b in moved)
    assert (
        api.post(
            GUIDE,
            "/api/v1/members/transfer",
            json={"from_guide_id": colleague.id, "to_guide_id": me.id},
        ).status_code
        == 403
    )


def test_guide_leaving_hands_members_to_a_successor(api, session):
    me, colleague = staff_by_phone(session, GUIDE), staff_by_phone(session, COLLEAGUE)
    response = api.post(MANAGER, f"/api/v1/staff/{me.id}/leave", json={"transfer_to": colleague.id})
    assert response.status_code == 200 and response.get_json()["state"] == "left"
    session.expire_all()
    assert (
        session.scalar(
            select(func.count()).select_from(Member).where(Member.guide_id == colleague.id)
        )
        >= 60
    )
    other = staff_by_phone(session, OTHER_GUIDE)
    refused = api.post(HQ, f"/api/v1/staff/{colleague.id}/leave", json={"transfer_to": "x"})
    assert refused.status_code == 422 and other


ORDER = {
    "channel": "tmall",
    "order_no": "TM-1",
    "amount_fen": 19990,
    "ordered_at": "2026-11-20T10:00:00+08:00",
    "phone": "13677778888",
}


def test_payment_is_membership_and_replays_are_harmless(api, session):
    first = api.post(HQ, "/api/v1/orders", json=ORDER)
    again = api.post(HQ, "/api/v1/orders", json=ORDER)
    assert first.status_code == again.status_code == 200
    assert first.get_json()["created"] and not again.get_json()["created"]
    member = session.scalar(select(Member).where(Member.phone == "13677778888"))
    assert member is not None and member.stage == "customer" and member.source_channel == "tmall"
    jd = api.post(
        HQ,
        "/api/v1/orders",
        json={
            **ORDER,
            "channel": "jd",
            "phone": None,
            "order_no": "JD-1",
            "unionid": None,
            "channel_customer_id": "jd-user-9",
        },
    )
    assert jd.status_code == 422 or jd.get_json()["created"]
    changed = api.post(HQ, "/api/v1/orders", json={**ORDER, "amount_fen": 1})
    assert changed.status_code == 409


def test_same_person_across_channels_is_one_member(api, session):
    api.post(HQ, "/api/v1/orders", json={**ORDER, "unionid": "oU-same-person"})
    api.post(
        HQ,
        "/api/v1/orders",
        json={**ORDER, "channel": "douyin", "order_no": "DY-1", "phone": "+86 136-7777-8888"},
    )
    members = session.scalars(select(Member).where(Member.phone == "13677778888")).all()
    assert len(members) == 1
    card = api.get(HQ, f"/api/v1/members/{members[0].id}/card").get_json()
    assert {o["channel"] for o in card["recent_orders"]} == {"tmall", "douyin"}


def test_refunds_are_events_and_cannot_exceed_the_order(api, session):
    api.post(HQ, "/api/v1/orders", json=ORDER)
    refund = {"channel": "tmall", "order_no": "TM-1", "refund_no": "R-1", "amount_fen": 9990}
    assert api.post(HQ, "/api/v1/orders/refunds", json=refund).get_json()["created"]
    assert not api.post(HQ, "/api/v1/orders/refunds", json=refund).get_json()["created"]
    too_much = api.post(
        HQ, "/api/v1/orders/refunds", json={**refund, "refund_no": "R-2", "amount_fen": 10001}
    )
    assert too_much.status_code == 422
    full = api.post(
        HQ, "/api/v1/orders/refunds", json={**refund, "refund_no": "R-3", "amount_fen": 10000}
    )
    assert full.status_code == 200
    member = session.scalar(select(Member).where(Member.phone == "13677778888"))
    session.refresh(member)
    assert member.stage == "prospect"  # fully refunded: no paid order left
    assert api.post(MANAGER, "/api/v1/orders", json=ORDER).status_code == 403


@pytest.mark.parametrize(
    "body,field",
    [
        ({"amount_fen": -1}, "amount_fen"),
        ({"amount_fen": 1.5}, "amount_fen"),
        ({"channel": "taobao"}, "channel"),
        ({"ordered_at": "2026-11-20T10:00:00"}, "ordered_at"),
    ],
)
def test_bad_orders_are_refused_by_field(api, body, field):
    response = api.post(HQ, "/api/v1/orders", json={**ORDER, **body})
    assert response.status_code == 422 and field in response.get_json()["errors"]


def test_points_ledger_balance_is_the_sum(api, session):
    member = member_of(session, GUIDE)
    start = api.get(GUIDE, f"/api/v1/members/{member.id}/card").get_json()["points_balance"]
    api.post(MANAGER, f"/api/v1/members/{member.id}/points", json={"kind": "earn", "points": 100})
    spent = api.post(
        MANAGER, f"/api/v1/members/{member.id}/points", json={"kind": "spend", "points": 30}
    )
    assert spent.get_json()["points_balance"] == start + 70
    overdraw = api.post(
        MANAGER, f"/api/v1/members/{member.id}/points", json={"kind": "spend", "points": 10**8}
    )
    assert overdraw.status_code == 422
    assert (
        api.post(
            GUIDE, f"/api/v1/members/{member.id}/points", json={"kind": "earn", "points": 5}
        ).status_code
        == 403
    )
    total = session.scalar(
        select(func.sum(PointsEntry.points)).where(PointsEntry.member_id == member.id)
    )
    assert total == start + 70


def test_guide_registers_a_member_and_staff_cannot_be_recruited(api, session):
    created = api.post(GUIDE, "/api/v1/members", json={"phone": "13566667777", "name": "新会员"})
    assert created.status_code == 201
    me = staff_by_phone(session, GUIDE)
    assert created.get_json()["guide_id"] == me.id
    dup = api.post(GUIDE, "/api/v1/members", json={"phone": "135 6666 7777"})
    assert dup.status_code == 422
    staff = api.post(GUIDE, "/api/v1/members", json={"phone": MANAGER})
    assert staff.status_code == 422


def test_hq_sets_the_lifecycle_rules(api, session):
    assert api.get(GUIDE, "/api/v1/settings/lifecycle").get_json()["regular_min_orders"] == 3
    assert (
        api.client.put(
            "/api/v1/settings/lifecycle",
            json={"regular_min_orders": 1},
            headers=api.headers(MANAGER),
        ).status_code
        == 403
    )
    changed = api.client.put(
        "/api/v1/settings/lifecycle", json={"regular_min_orders": 1}, headers=api.headers(HQ)
    )
    assert changed.status_code == 200 and changed.get_json()["regular_min_orders"] == 1
    api.post(HQ, "/api/v1/orders", json=ORDER)
    member = session.scalar(select(Member).where(Member.phone == "13677778888"))
    assert member.stage == "regular"  # one order in the window now makes a regular
    bad = api.client.put(
        "/api/v1/settings/lifecycle", json={"regular_min_orders": 0}, headers=api.headers(HQ)
    )
    assert bad.status_code == 422


def test_guide_search_pages_cover_own_members_and_store_pool_exactly(api, session):
    """The guide's search walks two indexed branches; its pages must equal the read rule."""
    from guideapp import policy
    from guideapp.policy.actor import Actor

    colleague = staff_by_phone(session, COLLEAGUE)
    for member in session.scalars(
        select(Member).where(Member.guide_id == colleague.id).order_by(Member.id).limit(9)
    ):
        member.guide_id = None  # into the store's pool
    session.flush()
    expected = sorted(
        session.scalars(
            policy.scoped_select(Actor.for_staff(staff_by_phone(session, GUIDE)), Member)
            .where(Member.state == "active")
            .with_only_columns(Member.id)
        )
    )
    seen, cursor = [], None
    while True:
        url = "/api/v1/members?limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(GUIDE, url).get_json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == expected and len(expected) == 60 + 9 + 2  # own, moved, the fixtures' pool
