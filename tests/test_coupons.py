"""Coupons through the API: templates, issue by guides, the wallet, redemption at a till,
refunds that give coupons back, and the refusals a cashier can read."""

import itertools
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from guideapp.coupons import rules
from guideapp.coupons.models import Coupon, CouponRedemption, CouponTemplate
from guideapp.members.binding import bind
from guideapp.members.identity import create_member
from guideapp.members.models import Order
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE, RIVAL_HQ, RIVAL_MANAGER
from tests.factories import member_of, staff_by_phone, store_by_code

TEMPLATES = "/api/v1/coupon-templates"
REDEEM = "/api/v1/coupons/redeem"
_phones = itertools.count(1)
_orders = itertools.count(1)


def template(api, phone=HQ, status=201, **fields):
    body = {"name": "满100减20", "kind": "amount_off", "amount_off_fen": 2000, "valid_days": 30}
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    response = api.post(phone, TEMPLATES, json=body)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def fresh_member(session, guide_phone=GUIDE):
    guide = staff_by_phone(session, guide_phone)
    member = create_member(
        session, tenant_id=guide.tenant_id, phone=f"136{next(_phones):08d}", source_channel="pos"
    )
    bind(session, member=member, guide=guide, reason="recruited")
    session.flush()
    return member


def issue(api, member_id, template_id, phone=GUIDE, status=201, **extra):
    response = api.post(
        phone, f"/api/v1/members/{member_id}/coupons", json={"template_id": template_id, **extra}
    )
    assert response.status_code == status, response.get_json()
    return response.get_json()


def redeem(api, codes, phone=HQ, status=200, store="SH001", **fields):
    body = {
        "codes": codes,
        "channel": "pos",
        "order_no": f"POS-{next(_orders)}",
        "amount_fen": 15000,
        "store_code": store,
        **fields,
    }
    response = api.post(phone, REDEEM, json=body)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def test_a_guide_sends_a_coupon_and_a_till_redeems_it_once(api, session):
    made = template(api, threshold_fen=10000)
    member = fresh_member(session)
    coupon = issue(api, member.id, made["id"])
    assert coupon["status"] == "available" and coupon["source"] == "staff"
    assert coupon["issued_by"] == staff_by_phone(session, GUIDE).id
    assert len(coupon["code"]) == rules.CODE_LENGTH and set(coupon["code"]) <= set(rules.ALPHABET)

    answer = redeem(api, [coupon["code"].lower()], order_no="POS-A1")
    assert answer["discount_fen"] == 2000 and answer["pay_fen"] == 13000
    again = redeem(api, [coupon["code"]], order_no="POS-A1")  # the till retries
    assert again["created"] is False and again["discount_fen"] == 2000
    used = redeem(api, [coupon["code"]], order_no="POS-A2", status=409)
    assert used["errors"]["reason"] == ["used"]
    assert session.scalar(select(func.count()).select_from(CouponRedemption)) == 1

    wallet = api.get(GUIDE, f"/api/v1/members/{member.id}/coupons").get_json()["items"]
    assert [c["status"] for c in wallet] == ["used"]


def test_percent_off_rounds_down_and_respects_its_cap(api, session):
    made = template(api, kind="percent_off", amount_off_fen=None, percent_off_bp=1250)
    capped = template(
        api, kind="percent_off", amount_off_fen=None, percent_off_bp=5000, max_discount_fen=3000
    )
    member = fresh_member(session)
    first = issue(api, member.id, made["id"])
    assert redeem(api, [first["code"]], amount_fen=9999)["discount_fen"] == 1249  # 1249.875
    second = issue(api, member.id, capped["id"])
    assert redeem(api, [second["code"]], amount_fen=9999)["discount_fen"] == 3000


def test_the_refusals_a_cashier_reads(api, session):
    now = datetime.now(timezone.utc)
    member = fresh_member(session)
    threshold = issue(api, member.id, template(api, threshold_fen=50000)["id"])
    assert redeem(api, [threshold["code"]], status=422)["errors"]["reason"] == ["below_threshold"]
    store_only = template(api, MANAGER)  # the manager's SH001 template
    other_store = issue(api, member.id, store_only["id"])
    assert redeem(api, [other_store["code"]], store="BJ001", status=422)["errors"]["reason"] == [
        "wrong_store"
    ]
    online = issue(api, member.id, template(api, channels=["tmall"])["id"])
    assert redeem(api, [online["code"]], status=422)["errors"]["reason"] == ["wrong_channel"]
    later = template(
        api,
        valid_days=None,
        valid_from=(now + timedelta(days=2)).isoformat(),
        valid_to=(now + timedelta(days=9)).isoformat(),
    )
    early = issue(api, member.id, later["id"])
    assert redeem(api, [early["code"]], status=409)["errors"]["reason"] == ["not_yet_valid"]
    lapsed = issue(api, member.id, template(api)["id"])
    session.execute(
        Coupon.__table__.update()
        .where(Coupon.id == lapsed["id"])
        .values(valid_to=now - timedelta(minutes=1), valid_from=now - timedelta(days=1))
    )
    assert redeem(api, [lapsed["code"]], status=409)["errors"]["reason"] == ["expired"]
    assert redeem(api, ["NOSUCHCODE0000"], status=404)["code"] == 404
    # A manager redeems at their own store only; a guide of another store cannot either.
    fine = issue(api, member.id, template(api)["id"])
    redeem(api, [fine["code"]], phone=OTHER_GUIDE, status=403)
    redeem(api, [fine["code"]], phone=MANAGER)
    # Nothing was written by a refusal.
    assert session.scalar(select(func.count()).select_from(CouponRedemption)) == 1


def test_stacking(api, session):
    member = fresh_member(session)
    alone = issue(api, member.id, template(api)["id"])
    stacks = template(api, stackable=True, per_member_limit=2)
    one, two = (issue(api, member.id, stacks["id"]) for _ in range(2))
    assert redeem(api, [alone["code"], one["code"]], status=409)["errors"]["reason"] == [
        "not_stackable"
    ]
    both = redeem(api, [one["code"], two["code"]], amount_fen=3000)
    assert [c["discount_fen"] for c in both["coupons"]] == [2000, 1000]  # never past the bill
    assert both["pay_fen"] == 0


def test_stock_and_per_member_limit_are_named_in_the_409(api, session):
    made = template(api, stock_total=2)
    first, second, third = (fresh_member(session) for _ in range(3))
    issue(api, first.id, made["id"])
    refused = issue(api, first.id, made["id"], status=409)
    assert refused["errors"]["reason"] == ["per_member_limit"]
    issue(api, second.id, made["id"])
    out = issue(api, third.id, made["id"], status=409)
    assert out["errors"]["reason"] == ["out_of_stock"]
    assert session.get(CouponTemplate, made["id"]).issued_count == 2


def test_staff_get_no_coupons(api, session):
    colleague = staff_by_phone(session, OTHER_GUIDE)
    member = fresh_member(session)
    member.phone = colleague.phone
    session.flush()
    made = template(api)
    assert issue(api, member.id, made["id"], status=409)["errors"]["reason"] == ["staff_member"]


def test_templates_are_scoped_like_everything_else(api, session):
    hq = template(api)
    store = template(api, MANAGER)
    assert store["store_id"] == store_by_code(session, "SH001").id
    template(api, GUIDE, status=403)
    assert api.get(RIVAL_HQ, f"{TEMPLATES}/{hq['id']}").status_code == 404
    assert api.get(OTHER_GUIDE, f"{TEMPLATES}/{store['id']}").status_code == 404
    member = fresh_member(session)
    issue(api, member.id, hq["id"], phone=RIVAL_MANAGER, status=404)
    other = fresh_member(session, OTHER_GUIDE)
    issue(api, other.id, hq["id"], phone=GUIDE, status=404)  # not my member
    # A BJ001 guide cannot send SH001's store template (404: not theirs to see).
    issue(api, other.id, store["id"], phone=OTHER_GUIDE, status=404)


def test_bad_templates_are_422_and_write_nothing(api, session):
    for fields in (
        {"kind": "percent_off", "amount_off_fen": None},
        {"kind": "gift", "amount_off_fen": None},
        {"valid_days": None},
        {
            "valid_from": "2027-01-02T00:00:00Z",
            "valid_to": "2027-01-01T00:00:00Z",
            "valid_days": None,
        },
        {"low_stock_threshold": 5},
        {"amount_off_fen": -1},
        {"store_ids": ["nope"]},
    ):
        template(api, status=422, **fields)
    assert session.scalar(select(func.count()).select_from(CouponTemplate)) == 0


def test_a_full_refund_gives_the_coupon_back_and_the_order_carries_it(api, session):
    member = fresh_member(session)
    coupon = issue(api, member.id, template(api)["id"])
    redeem(api, [coupon["code"]], order_no="POS-R1", amount_fen=15000)
    order = api.post(
        HQ,
        "/api/v1/orders",
        json={
            "channel": "pos",
            "order_no": "POS-R1",
            "amount_fen": 13000,
            "phone": member.phone,
            "ordered_at": datetime.now(timezone.utc).isoformat(),
        },
    )
    assert order.status_code == 200, order.get_json()
    assert order.get_json()["order"]["coupon_discount_fen"] == 2000
    assert session.get(CouponRedemption, session.scalar(select(CouponRedemption.id))).order_id
    refund = {"channel": "pos", "order_no": "POS-R1", "refund_no": "RF1", "amount_fen": 5000}
    assert api.post(HQ, "/api/v1/orders/refunds", json=refund).status_code == 200
    assert session.get(Coupon, coupon["id"]).state == "used"  # a partial refund keeps it
    rest = {**refund, "refund_no": "RF2", "amount_fen": 8000}
    assert api.post(HQ, "/api/v1/orders/refunds", json=rest).status_code == 200
    back = session.get(Coupon, coupon["id"])
    session.refresh(back)
    assert back.state == "available" and back.state_reason == "refunded"
    assert session.scalar(select(Order.coupon_discount_fen).where(Order.order_no == "POS-R1")) == 0
    redeem(api, [coupon["code"]], order_no="POS-R2")  # usable again


def test_the_card_shows_the_wallet(api, session):
    member = member_of(session, GUIDE)
    made = template(api, per_member_limit=3)
    for _ in range(2):
        issue(api, member.id, made["id"])
    card = api.get(GUIDE, f"/api/v1/members/{member.id}/card").get_json()
    assert len(card["coupons"]) == 2 and card["coupon_counts"]["available"] == 2


def test_the_cards_counts_tell_used_and_lapsed_apart(api, session):
    """Available counts only coupons still valid; one past its end, still marked available
    until the nightly sweep, counts as expired, as does one the sweep marked."""
    member = member_of(session, GUIDE)
    made = template(api, per_member_limit=5)
    coupons = [issue(api, member.id, made["id"]) for _ in range(4)]
    redeem(api, [coupons[0]["code"]], order_no="POS-C1")
    past = datetime.now(timezone.utc) - timedelta(days=1)
    lapsed, swept = (session.get(Coupon, c["id"]) for c in coupons[1:3])
    lapsed.valid_from, lapsed.valid_to = past - timedelta(days=30), past
    swept.state = "expired"
    session.flush()
    card = api.get(GUIDE, f"/api/v1/members/{member.id}/card").get_json()
    assert card["coupon_counts"] == {"available": 1, "used": 1, "expired": 2}
    assert [c["id"] for c in card["coupons"]] == [coupons[3]["id"]]


def test_commissions_are_on_what_the_member_paid(api, session):
    from guideapp.commissions.models import CommissionEntry

    rule = {"name": "导购提成", "kind": "order_percent", "rate_bp": 1000, "order_basis": "binding"}
    created = api.post(HQ, "/api/v1/commissions/rules", json=rule)
    assert created.status_code == 201
    member = fresh_member(session)
    coupon = issue(api, member.id, template(api)["id"])
    assert redeem(api, [coupon["code"]], order_no="POS-C1", amount_fen=15000)["pay_fen"] == 13000
    order = {
        "channel": "pos",
        "order_no": "POS-C1",
        "amount_fen": 13000,  # what the till charged after the coupon
        "phone": member.phone,
        "ordered_at": datetime.now(timezone.utc).isoformat(),
    }
    assert api.post(HQ, "/api/v1/orders", json=order).status_code == 200
    earned = session.scalar(
        select(func.sum(CommissionEntry.amount_fen)).where(
            CommissionEntry.guide_id == staff_by_phone(session, GUIDE).id,
            CommissionEntry.rule_id == created.get_json()["id"],
        )
    )
    assert earned == 1300
