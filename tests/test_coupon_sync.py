"""Coupons on the guide's phone (sync schema version 3): older phones get what they got,
an offline issue is issued exactly once, used and expired coupons leave, and a member's
coupons follow their card when it moves (transfer, rebinding, merge)."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from urllib.parse import quote

from sqlalchemy import event, func, select, update

from guideapp.coupons.models import Coupon, CouponTemplate
from guideapp.db import transaction, utcnow
from guideapp.members.binding import bind
from guideapp.members.identity import create_member
from guideapp.members.models import Member, MemberMerge
from guideapp.sync.context import OUT_OF_SCOPE
from guideapp.sync.models import SyncRejection
from guideapp.tasks.scheduler import tick
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE
from tests.factories import staff_by_phone

_phones = itertools.count(1)
_keys = itertools.count(1)


def template(api, **fields) -> dict:
    body = {"name": "满100减20", "kind": "amount_off", "amount_off_fen": 2000, "valid_days": 30}
    body.update(fields)
    response = api.post(HQ, "/api/v1/coupon-templates", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def member_of_guide(session, guide_phone=GUIDE, phone=None) -> Member:
    guide = staff_by_phone(session, guide_phone)
    member = create_member(
        session,
        tenant_id=guide.tenant_id,
        phone=phone or f"135{next(_phones):08d}",
        source_channel="pos",
    )
    bind(session, member=member, guide=guide, reason="recruited")
    session.flush()
    return member


def issue(api, member_id, template_id, who=GUIDE) -> dict:
    url = f"/api/v1/members/{member_id}/coupons"
    response = api.post(who, url, json={"template_id": template_id})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def pull(api, who, version, cursor=None, migration=None) -> tuple[dict, int]:
    """All pages of one pull: {table: {"updated": {id: record}, "deleted": [ids]}}."""
    url = f"/api/v1/sync/pull?last_pulled_at={cursor or 'null'}&schema_version={version}"
    if migration is not None:
        url += "&migration=" + quote(json.dumps(migration))
    merged: dict = {}
    page = None
    while True:
        response = api.get(who, url + (f"&page={page}" if page else ""))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        for table, ops in body["changes"].items():
            slot = merged.setdefault(table, {"updated": {}, "deleted": []})
            slot["updated"].update({r["id"]: r for r in ops["updated"]})
            slot["deleted"] += ops["deleted"]
        page = body["next_page"]
        if not page:
            return merged, body["timestamp"]


def push(api, who, cursor, changes, key=None):
    return api.post(
        who,
        f"/api/v1/sync/push?last_pulled_at={cursor}",
        json={"changes": changes},
        headers={"Idempotency-Key": key or f"coupon-push-{next(_keys)}"},
    )


def created(*records) -> dict:
    return {"coupons": {"created": list(records), "updated": [], "deleted": []}}


# --- pull: versions 2 and 3 --------------------------------------------------------------


def test_version_2_phones_get_what_they_got_and_version_3_the_wallet(api, session):
    made = template(api, threshold_fen=10000, description="满100元可用")
    member = member_of_guide(session)
    coupon = issue(api, member.id, made["id"])
    old, _ = pull(api, GUIDE, 2)
    assert "coupons" not in old
    assert all("coupon_discount_fen" not in r for r in old["orders"]["updated"].values())
    new, cursor = pull(api, GUIDE, 3)
    assert new["orders"]["updated"] and all(
        "coupon_discount_fen" in r for r in new["orders"]["updated"].values()
    )
    assert set(new) - set(old) == {"coupons"}
    record = new["coupons"]["updated"][coupon["id"]]
    assert record["member_id"] == member.id and record["code"] == coupon["code"]
    assert (record["name"], record["kind"], record["amount_off_fen"]) == (
        "满100减20",
        "amount_off",
        2000,
    )
    assert (record["threshold_fen"], record["description"]) == (10000, "满100元可用")
    assert record["valid_to"] == int(coupon_row(session, coupon["id"]).valid_to.timestamp() * 1000)
    # Another guide's phone never holds it; a renamed template reaches the holder's phone.
    assert coupon["id"] not in pull(api, OTHER_GUIDE, 3)[0]["coupons"]["updated"]
    api.patch(HQ, f"/api/v1/coupon-templates/{made['id']}", json={"name": "满100减20元"})
    changed, _ = pull(api, GUIDE, 3, cursor)
    assert changed["coupons"]["updated"][coupon["id"]]["name"] == "满100减20元"
    assert "coupons" not in pull(api, GUIDE, 2, cursor)[0]
    unknown = api.get(GUIDE, "/api/v1/sync/pull?schema_version=4")
    assert unknown.status_code == 422 and "schema_version" in unknown.get_json()["errors"]


def test_a_phone_moving_to_version_3_gets_the_wallet_and_the_new_column(api, session):
    coupon = issue(api, member_of_guide(session).id, template(api)["id"])
    _, cursor = pull(api, GUIDE, 2)
    migration = {
        "from": 2,
        "tables": ["coupons"],
        "columns": [{"table": "orders", "columns": ["coupon_discount_fen"]}],
    }
    changes, _ = pull(api, GUIDE, 3, cursor, migration=migration)
    assert coupon["id"] in changes["coupons"]["updated"]
    assert changes["orders"]["updated"]
    assert all("coupon_discount_fen" in r for r in changes["orders"]["updated"].values())


def test_a_page_of_coupons_reads_their_templates_in_one_query(api, session, connection):
    templates = [template(api, name=f"券{i}")["id"] for i in range(3)]
    for _ in range(4):
        member = member_of_guide(session)
        for template_id in templates:
            issue(api, member.id, template_id)
    statements = []

    def seen(conn, cursor, statement, *args):
        if "FROM coupon_templates" in statement:
            statements.append(statement)

    event.listen(connection, "before_cursor_execute", seen)
    try:
        changes, _ = pull(api, GUIDE, 3)
    finally:
        event.remove(connection, "before_cursor_execute", seen)
    assert len(changes["coupons"]["updated"]) >= 12
    assert len(statements) == 1


def coupon_row(session, coupon_id) -> Coupon:
    session.expire_all()
    return session.get_one(Coupon, coupon_id)


# --- push: a guide issuing offline -------------------------------------------------------


def test_an_offline_issue_is_issued_exactly_once(api, session):
    made = template(api)
    member = member_of_guide(session)
    _, cursor = pull(api, GUIDE, 3)
    record = {"id": "offline-coupon-1", "member_id": member.id, "template_id": made["id"]}
    first = push(api, GUIDE, cursor, created(record), key="offline-1")
    assert first.status_code == 200 and first.get_json() == {}
    replay = push(api, GUIDE, cursor, created(record), key="offline-1")
    assert replay.headers.get("Idempotent-Replayed") == "true"
    # The answer was lost: the phone pushes again with a new key; the server says pull.
    lost = push(api, GUIDE, cursor, created(record))
    assert lost.status_code == 409 and lost.get_json()["errors"] == {"coupons": [record["id"]]}
    changes, cursor = pull(api, GUIDE, 3, cursor)
    assert changes["coupons"]["updated"][record["id"]]["code"]
    again = push(api, GUIDE, cursor, created(record))
    assert again.status_code == 200 and again.get_json() == {}
    rows = session.scalars(select(Coupon).where(Coupon.member_id == member.id)).all()
    assert [(c.id, c.issue_key, c.source) for c in rows] == [
        (record["id"], "push:offline-coupon-1", "staff")
    ]
    assert rows[0].issued_by == staff_by_phone(session, GUIDE).id
    assert session.get_one(CouponTemplate, made["id"]).issued_count == 1


def test_refused_offline_issues_are_rejected_and_leave_the_phone(api, session):
    scarce = template(api, stock_total=1)
    once = template(api, per_member_limit=1)
    members = [member_of_guide(session) for _ in range(2)]
    colleague = member_of_guide(session, phone=OTHER_GUIDE)  # staff: never a coupon
    theirs = member_of_guide(session, guide_phone=OTHER_GUIDE)
    issue(api, members[0].id, once["id"])
    _, cursor = pull(api, GUIDE, 3)

    def record(name, member, made):
        return {"id": name, "member_id": member.id, "template_id": made["id"]}

    response = push(
        api,
        GUIDE,
        cursor,
        created(
            record("scarce-1", members[0], scarce),
            record("scarce-2", members[1], scarce),
            record("limit", members[0], once),
            record("staff", colleague, scarce),
            record("not-mine", theirs, once),
            {"id": "no-template", "member_id": members[1].id},
            {"id": "unknown-template", "member_id": members[1].id, "template_id": "nope"},
        ),
    )
    assert response.status_code == 200, response.get_json()
    rejected = response.get_json()["rejected"]["coupons"]
    assert set(rejected) == {
        "scarce-2",
        "limit",
        "staff",
        "not-mine",
        "no-template",
        "unknown-template",
    }
    assert "stock" in rejected["scarce-2"] and "limit of 1" in rejected["limit"]
    assert "staff" in rejected["staff"]
    assert rejected["not-mine"] == rejected["unknown-template"] == OUT_OF_SCOPE
    assert "template_id" in rejected["no-template"]
    assert (
        session.scalar(select(Coupon.issue_key).where(Coupon.id == "scarce-1")) == "push:scarce-1"
    )
    assert session.scalar(select(func.count()).where(Coupon.id.in_(rejected))) == 0
    kept = session.scalars(
        select(SyncRejection.record_id).where(SyncRejection.table_name == "coupons")
    ).all()
    assert set(kept) >= set(rejected)
    changes, _ = pull(api, GUIDE, 3, cursor)
    assert set(rejected) <= set(changes["coupons"]["deleted"])  # the phone drops its copies
    assert "scarce-1" in changes["coupons"]["updated"]


# --- leaving the phone: used, expired ------------------------------------------------------


def test_used_and_expired_coupons_leave_the_phone(api, session):
    made = template(api)
    member = member_of_guide(session)
    used, lapsing = issue(api, member.id, made["id"]), issue(api, member.id, template(api)["id"])
    tenant_id = member.tenant_id
    tick(session, tenant_id=tenant_id, now=utcnow() - timedelta(minutes=10))
    _, cursor = pull(api, GUIDE, 3)
    till = {"codes": [used["code"]], "channel": "pos", "order_no": "POS-CS-1", "amount_fen": 9000}
    assert (
        api.post(HQ, "/api/v1/coupons/redeem", json={**till, "store_code": "SH001"}).status_code
        == 200
    )
    # Time passes: the coupon's end comes with no write at all; the next tick notes it.
    session.execute(
        update(Coupon)
        .where(Coupon.id == lapsing["id"])
        .values(valid_from=utcnow() - timedelta(days=1), valid_to=utcnow() - timedelta(minutes=1))
    )
    with transaction(session):
        tick(session, tenant_id=tenant_id, now=utcnow())
    changes, _ = pull(api, GUIDE, 3, cursor)
    assert set(changes["coupons"]["deleted"]) >= {used["id"], lapsing["id"]}
    row = coupon_row(session, lapsing["id"])
    assert (row.state, row.state_reason) == ("expired", "expired")
    wallet = api.get(GUIDE, f"/api/v1/members/{member.id}/coupons?status=expired").get_json()
    assert [c["id"] for c in wallet["items"]] == [lapsing["id"]]


# --- following the member's card ---------------------------------------------------------


def test_coupons_follow_a_transferred_or_rebound_member(api, session):
    made = template(api, per_member_limit=5)
    moved, rebound = member_of_guide(session), member_of_guide(session)
    coupons = {issue(api, m.id, made["id"])["id"] for m in (moved, rebound)}
    _, mine = pull(api, GUIDE, 3)
    _, theirs = pull(api, OTHER_GUIDE, 3)
    me, other = staff_by_phone(session, GUIDE), staff_by_phone(session, OTHER_GUIDE)
    body = {"from_guide_id": me.id, "to_guide_id": other.id, "member_ids": [moved.id]}
    assert api.post(HQ, "/api/v1/members/transfer", json=body).status_code == 200
    rebound.binding_locked_until = None  # the lock ran out: a manager may rebind one member
    session.flush()
    answer = api.post(HQ, f"/api/v1/members/{rebound.id}/binding", json={"guide_id": other.id})
    assert answer.status_code == 200, answer.get_json()
    assert coupons <= set(pull(api, GUIDE, 3, mine)[0]["coupons"]["deleted"])
    assert coupons <= set(pull(api, OTHER_GUIDE, 3, theirs)[0]["coupons"]["updated"])


def test_merging_moves_the_coupons_to_the_survivor(api, session):
    made = template(api, per_member_limit=5)
    survivor = member_of_guide(session)
    duplicate = member_of_guide(session, guide_phone=OTHER_GUIDE)
    kept, moved = (
        issue(api, survivor.id, made["id"]),
        issue(api, duplicate.id, made["id"], OTHER_GUIDE),
    )
    _, mine = pull(api, GUIDE, 3)
    _, theirs = pull(api, OTHER_GUIDE, 3)
    url = f"/api/v1/members/{survivor.id}/merge"
    answer = api.post(HQ, url, json={"merged_id": duplicate.id})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["moved"]["coupons"] == 1
    assert session.scalar(select(MemberMerge.moved["coupons"].as_integer())) == 1
    assert coupon_row(session, moved["id"]).member_id == survivor.id
    assert set(pull(api, GUIDE, 3, mine)[0]["coupons"]["updated"]) >= {moved["id"]}
    assert moved["id"] in pull(api, OTHER_GUIDE, 3, theirs)[0]["coupons"]["deleted"]
    wallet = api.get(MANAGER, f"/api/v1/members/{survivor.id}/coupons").get_json()["items"]
    assert {c["id"] for c in wallet} == {kept["id"], moved["id"]}
