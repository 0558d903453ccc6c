"""The commission API as the mini-program and the HQ console use it (demo tenant)."""

import csv
import io
from datetime import datetime, timedelta, timezone

from openpyxl import load_workbook

from guideapp.commissions.service import current_month
from tests.commission_factories import recruit
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE
from tests.factories import staff_by_phone

CST = timezone(timedelta(hours=8))
OCT = datetime(2026, 10, 15, 12, tzinfo=CST)


def test_guide_sees_earnings_in_words(api, session):
    created = api.post(GUIDE, "/api/v1/members", json={"phone": "13566660001", "name": "张三"})
    assert created.status_code == 201, created.get_json()
    order = api.post(
        HQ,
        "/api/v1/orders",
        json={
            "channel": "pos",
            "order_no": "COMM-1",
            "amount_fen": 69900,
            "phone": "13566660001",
            "ordered_at": datetime.now(timezone.utc).isoformat(),
        },
    )
    assert order.status_code == 200, order.get_json()
    refund = api.post(
        HQ,
        "/api/v1/orders/refunds",
        json={"channel": "pos", "order_no": "COMM-1", "refund_no": "R1", "amount_fen": 34950},
    )
    assert refund.status_code == 200, refund.get_json()
    me = api.get(GUIDE, "/api/v1/commissions/me").get_json()
    assert me["month"] == current_month(session, staff_by_phone(session, GUIDE).tenant_id)
    texts = {e["text"] for e in me["entries"]}
    assert "招募会员 张三 奖励 ¥5.00" in texts
    assert "会员 张三 首单 ¥699.00 提成 3% ¥20.97" in texts
    assert "会员 张三 退款 ¥349.50 扣回提成 ¥10.48" in texts
    assert (me["earned_fen"], me["clawed_back_fen"], me["net_fen"]) == (2597, 1048, 1549)
    assert (me["pending_fen"], me["settled_fen"], me["month_state"]) == (1549, 0, "open")
    assert "实得 ¥15.49" in me["summary"]
    other = api.get(OTHER_GUIDE, "/api/v1/commissions/me").get_json()
    assert all(e["guide_id"] == staff_by_phone(session, OTHER_GUIDE).id for e in other["entries"])
    bad = api.get(GUIDE, "/api/v1/commissions/me?month=2026-13")
    assert bad.status_code == 422


def test_rules_are_versioned_and_hq_only(api):
    body = {"name": "门店冲刺奖", "kind": "recruit_bounty", "amount_fen": 800}
    assert api.post(GUIDE, "/api/v1/commissions/rules", json=body).status_code == 403
    assert api.post(MANAGER, "/api/v1/commissions/rules", json=body).status_code == 403
    created = api.post(HQ, "/api/v1/commissions/rules", json=body)
    assert created.status_code == 201, created.get_json()
    v1 = created.get_json()
    bad = api.post(HQ, "/api/v1/commissions/rules", json={"name": "x", "kind": "order_percent"})
    assert set(bad.get_json()["errors"]) == {"rate_bp", "order_basis"}
    v2 = api.post(
        HQ, f"/api/v1/commissions/rules/{v1['id']}/versions", json={"amount_fen": 1000}
    ).get_json()
    assert (v2["version"], v2["rule_key"], v2["amount_fen"], v2["name"]) == (
        2,
        v1["id"],
        1000,
        "门店冲刺奖",
    )
    assert (
        api.post(
            GUIDE, f"/api/v1/commissions/rules/{v1['id']}/versions", json={"amount_fen": 1}
        ).status_code
        == 403
    )
    listed = api.get(HQ, f"/api/v1/commissions/rules?rule_key={v1['id']}").get_json()["items"]
    assert [(r["version"], r["amount_fen"]) for r in listed] == [(2, 1000), (1, 800)]
    assert api.get(HQ, f"/api/v1/commissions/rules/{v1['id']}").get_json()["amount_fen"] == 800
    assert api.get(GUIDE, "/api/v1/commissions/rules").get_json()["items"]


def test_settle_a_month_statements_approve_and_export(api, session):
    guide, colleague = staff_by_phone(session, GUIDE), staff_by_phone(session, "13913775684")
    for i, who in enumerate((guide, guide, colleague)):
        recruit(session, who, at=OCT + timedelta(hours=i), name=f"十月会员{i}")
    assert (
        api.post(
            GUIDE, "/api/v1/commissions/settlements?wait=true", json={"month": "2026-10"}
        ).status_code
        == 403
    )
    current = current_month(session, guide.tenant_id)
    assert (
        api.post(
            HQ, "/api/v1/commissions/settlements?wait=true", json={"month": current}
        ).status_code
        == 409
    )
    closed = api.post(HQ, "/api/v1/commissions/settlements?wait=true", json={"month": "2026-10"})
    assert closed.status_code == 201, closed.get_json()
    settled = closed.get_json()
    again = api.post(
        HQ, "/api/v1/commissions/settlements?wait=true", json={"month": "2026-10"}
    ).get_json()
    assert again["id"] == settled["id"] and settled["state"] == "draft"
    assert settled["net_fen"] >= 1500
    url = f"/api/v1/commissions/settlements/{settled['id']}"
    by_guide = api.get(HQ, f"{url}/statements?level=guide").get_json()["items"]
    mine = next(s for s in by_guide if s["subject_id"] == guide.id)
    assert mine["earned_fen"] >= 1000 and mine["name"] == guide.name
    stores = api.get(HQ, f"{url}/statements?level=store").get_json()["items"]
    assert sum(s["net_fen"] for s in stores) == settled["net_fen"]
    assert api.get(MANAGER, url).status_code == 404  # settlements are HQ's
    me = api.get(GUIDE, "/api/v1/commissions/me?month=2026-10").get_json()
    assert me["month_state"] == "draft" and me["settled_fen"] == mine["net_fen"]
    assert me["pending_fen"] == 0
    workbook = api.get(HQ, f"{url}/export?format=xlsx&level=guide")
    assert workbook.status_code == 200 and "spreadsheetml" in workbook.mimetype
    sheet = load_workbook(io.BytesIO(workbook.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1][0] == "月份" and rows[-1][0] == "合计"
    net = rows[1].index("实得(分)")
    assert rows[-1][net] == settled["net_fen"]
    assert any(r[1] == guide.id and r[net] == mine["net_fen"] for r in rows[2:-1])
    text = api.get(HQ, f"{url}/export?format=csv&level=store").data.decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0][:3] == ["月份", "门店ID", "门店"] and len(lines) == len(stores) + 1
    assert api.post(GUIDE, f"{url}/approve").status_code == 404
    approved = api.post(HQ, f"{url}/approve").get_json()
    assert approved["state"] == "approved" and approved["approved_by"]
    assert api.post(HQ, f"{url}/approve").get_json()["state"] == "approved"


def test_leaderboards_are_scoped_to_the_callers_store_and_region(api, session):
    guide, colleague = staff_by_phone(session, GUIDE), staff_by_phone(session, "13913775684")
    for i in range(3):
        recruit(session, colleague, at=OCT + timedelta(hours=i))
    recruit(session, guide, at=OCT)
    board = api.get(GUIDE, "/api/v1/leaderboards?scope=store&metric=recruits&month=2026-10")
    assert board.status_code == 200, board.get_json()
    items = board.get_json()["items"]
    assert [(i["guide_id"], i["value"]) for i in items[:2]] == [(colleague.id, 3), (guide.id, 1)]
    assert items[1]["is_me"] and items[0]["value_text"] == "3 人"
    earnings = api.get(GUIDE, "/api/v1/leaderboards?scope=store&metric=earnings&month=2026-10")
    assert earnings.get_json()["items"][0]["value_text"] == "¥15.00"
    region = api.get(MANAGER, "/api/v1/leaderboards?scope=region&metric=recruits&month=2026-10")
    assert {i["store_id"] for i in region.get_json()["items"]} == {guide.store_id}
    assert api.get(HQ, "/api/v1/leaderboards?scope=store").status_code == 422
    hq = api.get(HQ, f"/api/v1/leaderboards?scope=store&store_id={guide.store_id}&month=2026-10")
    assert hq.get_json()["items"][0]["guide_id"] == colleague.id
    other = api.get(OTHER_GUIDE, f"/api/v1/leaderboards?store_id={guide.store_id}&month=2026-10")
    assert other.status_code == 404


def test_entries_by_scope(api, session):
    guide, colleague = staff_by_phone(session, GUIDE), staff_by_phone(session, "13913775684")
    recruit(session, guide, at=OCT)
    recruit(session, colleague, at=OCT)
    recruit(session, staff_by_phone(session, OTHER_GUIDE), at=OCT)
    mine = api.get(GUIDE, "/api/v1/commissions/entries?month=2026-10").get_json()["items"]
    assert {e["guide_id"] for e in mine} == {guide.id}
    store = api.get(MANAGER, "/api/v1/commissions/entries?month=2026-10").get_json()["items"]
    assert {e["guide_id"] for e in store} == {guide.id, colleague.id}
    everyone = api.get(HQ, "/api/v1/commissions/entries?month=2026-10").get_json()["items"]
    assert len({e["store_id"] for e in everyone}) == 2
    one = api.get(GUIDE, f"/api/v1/commissions/entries/{mine[0]['id']}").get_json()
    assert one["text"].startswith("招募会员") and one["rule_version"] == 1
