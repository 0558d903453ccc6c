"""HQ's bulk issue to a segment as a job (exactly the segment, limit and stock, a rerun
issuing nothing twice, cancel at a checkpoint), and the coupon reports (figures against
hand-computed ones across a local day boundary, a reversed redemption left out, a manager
seeing their store only, the xlsx export)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select, update

from guideapp import create_app
from guideapp.coupons.models import Coupon, CouponRedemption
from guideapp.db import transaction
from guideapp.jobs.models import Job
from guideapp.members.identity import create_member
from guideapp.members.models import MemberTag, Tag
from tests.conftest import GUIDE, HQ, MANAGER, OTHER_GUIDE, make_config
from tests.factories import staff_by_phone, store_by_code, tag_group_of
from tests.test_coupons import fresh_member, issue, redeem, template
from tests.test_jobs import queue_of, run_jobs

BATCH = 2  # members per checkpoint in these tests
REPORT = "/api/v1/coupons/report"


@pytest.fixture
def app(database, connection, tmp_path):
    app = create_app(
        make_config(database, COUPON_ISSUE_BATCH=BATCH, UPLOAD_DIR=str(tmp_path / "up")),
        bind=connection,
    )
    yield app
    queue_of(app).flush()


def tagged(session, members, name="春季券人群"):
    group = tag_group_of(session, "stride")
    tag = Tag(tenant_id=group.tenant_id, group_id=group.id, name=name)
    session.add(tag)
    session.flush()
    for member in members:
        session.add(MemberTag(tenant_id=tag.tenant_id, member_id=member.id, tag_id=tag.id))
    session.flush()
    return tag.id


def bulk(api, template_id, status=202, who=HQ, **body):
    response = api.post(who, f"/api/v1/coupon-templates/{template_id}/issue", json=body)
    assert response.status_code == status, response.get_json()
    return response


def job_of(session, job_id) -> Job:
    session.expire_all()
    return session.get_one(Job, job_id)


def holders(session, template_id) -> list[str]:
    return sorted(
        session.scalars(select(Coupon.member_id).where(Coupon.template_id == template_id))
    )


def test_a_bulk_issue_reaches_exactly_the_segment_in_the_named_stores(api, app, session):
    sh = [fresh_member(session) for _ in range(5)]
    bj = fresh_member(session, OTHER_GUIDE)
    outside = fresh_member(session)  # in SH001, not in the segment
    staff = create_member(
        session,
        tenant_id=bj.tenant_id,
        phone=staff_by_phone(session, MANAGER).phone,
        source_channel="pos",
    )
    staff.store_id = sh[0].store_id
    tag_id = tagged(session, [*sh, bj, staff])
    made = template(api)
    accepted = bulk(api, made["id"], segment={"tag_ids": [tag_id]}, store_ids=[sh[0].store_id])
    job = accepted.get_json()
    assert accepted.headers["Location"] == job["url"] == f"/api/v1/jobs/{job['id']}"
    assert job["kind"] == "coupons.bulk_issue" and job["state"] == "queued"
    assert job["progress"] == {"done": 0, "total": 6, "unit": "members"}

    run_jobs(app)
    done = api.get(HQ, job["url"]).get_json()
    assert done["state"] == "succeeded", done
    assert done["progress"] == {"done": 6, "total": 6, "unit": "members"}
    assert done["result"] == {
        "template_id": made["id"],
        "members": 6,
        "issued": 5,
        "skipped": {"staff_member": 1},
    }
    assert holders(session, made["id"]) == sorted(m.id for m in sh)
    assert outside.id not in holders(session, made["id"])
    coupon = session.scalar(select(Coupon).where(Coupon.member_id == sh[0].id))
    assert (coupon.source, coupon.source_id) == ("bulk", job["id"])
    assert coupon.issue_key == f"bulk:{job['id']}:{sh[0].id}"
    wallet = api.get(GUIDE, f"/api/v1/members/{sh[0].id}/coupons").get_json()["items"]
    assert [c["id"] for c in wallet] == [coupon.id]

    # The same segment by region: Beijing's member only.
    region = store_by_code(session, "BJ001").region_id
    other = template(api)
    bulk(api, other["id"], segment={"tag_ids": [tag_id]}, region_ids=[region])
    run_jobs(app)
    assert holders(session, other["id"]) == [bj.id]


def test_the_per_member_limit_and_the_stock_apply_and_the_job_still_succeeds(api, app, session):
    members = [fresh_member(session) for _ in range(5)]
    made = template(api, stock_total=3)
    issue(api, members[0].id, made["id"])  # already holds its one
    job_id = bulk(api, made["id"], segment={"tag_ids": [tagged(session, members)]}).get_json()
    run_jobs(app)
    job = job_of(session, job_id["id"])
    assert job.state == "succeeded", job.error
    assert job.result["issued"] == 2  # stock 3, one issued by the guide
    assert job.result["skipped"] == {"per_member_limit": 1, "out_of_stock": 2}
    assert len(holders(session, made["id"])) == 3
    # A template with no stock left is refused at once, and no job is made.
    jobs_before = session.scalar(select(func.count()).select_from(Job))
    refused = bulk(api, made["id"], status=409, all=True).get_json()
    assert refused["errors"]["reason"] == ["out_of_stock"]
    assert session.scalar(select(func.count()).select_from(Job)) == jobs_before


def test_a_rerun_issues_nothing_twice(api, app, session):
    members = [fresh_member(session) for _ in range(5)]
    made = template(api)
    job_id = bulk(api, made["id"], segment={"tag_ids": [tagged(session, members)]}).get_json()["id"]
    run_jobs(app)
    assert job_of(session, job_id).result["issued"] == 5
    # As if the worker had died before recording any checkpoint: the job starts over.
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(state="queued", checkpoint={}, progress_done=0, result=None, finished_at=None)
    )
    queue_of(app).enqueue(job_id)
    run_jobs(app)
    job = job_of(session, job_id)
    assert job.state == "succeeded"
    assert job.result["issued"] == 0 and job.result["skipped"] == {"already_issued": 5}
    assert holders(session, made["id"]) == sorted(m.id for m in members)


def test_cancel_stops_at_a_checkpoint_and_keeps_what_was_issued(api, app, session):
    members = [fresh_member(session) for _ in range(7)]
    made = template(api)
    job_id = bulk(api, made["id"], segment={"tag_ids": [tagged(session, members)]}).get_json()["id"]
    maker = app.extensions["guideapp"]["sessionmaker"]
    runner = queue_of(app).runner

    def cancel_after_the_second_batch(ctx):
        if ctx.units == 2:
            with maker() as other, transaction(other):
                other.get_one(Job, job_id).cancel_requested = True

    runner.on_unit = cancel_after_the_second_batch
    try:
        run_jobs(app)
    finally:
        runner.on_unit = None
    job = job_of(session, job_id)
    assert job.state == "cancelled" and job.progress_done == 2 * BATCH
    first = sorted(m.id for m in members)[: 2 * BATCH]  # members go in id order
    assert holders(session, made["id"]) == first
    assert session.get_one(type(job), job_id).checkpoint["issued"] == 2 * BATCH


def test_bulk_issue_refusals_write_nothing(api, app, session):
    made = template(api)
    jobs_before = session.scalar(select(func.count()).select_from(Job))
    assert "HQ" in bulk(api, made["id"], who=MANAGER, status=403, all=True).get_json()["message"]
    bulk(api, made["id"], who=GUIDE, status=403, all=True)
    bulk(api, "nosuchtemplate", status=404, all=True)
    named = bulk(api, made["id"], status=422).get_json()
    assert "segment" in named["errors"]
    unknown = bulk(api, made["id"], status=422, segment={"tag_ids": ["nosuchtag"]}).get_json()
    assert "tag_ids" in unknown["errors"]["segment"]
    bulk(api, made["id"], status=422, store_ids=["nosuchstore"])
    bulk(api, made["id"], status=422, segment={"tiers": ["diamond"]})
    bulk(api, made["id"], status=422, all=True, extra=1)
    api.patch(HQ, f"/api/v1/coupon-templates/{made['id']}", json={"active": False})
    assert bulk(api, made["id"], status=409, all=True).get_json()["errors"]["template_id"]
    assert session.scalar(select(func.count()).select_from(Job)) == jobs_before


# --- reports -----------------------------------------------------------------------------


def _at(coupon_id, **times):
    return update(Coupon).where(Coupon.id == coupon_id).values(**times)


def _utc(*parts):
    return datetime(*parts, tzinfo=timezone.utc)


def _order(api, member, order_no, amount_fen):
    body = {
        "channel": "pos",
        "order_no": order_no,
        "amount_fen": amount_fen,
        "phone": member.phone,
        "ordered_at": _utc(2026, 10, 2, 4).isoformat(),
    }
    assert api.post(HQ, "/api/v1/orders", json=body).status_code == 200


def _october(api, session):
    """Shanghai (UTC+8): A to m1 at 23:59 on Oct 1, A to m2 at 00:00 on Oct 2, B to m3 on
    Oct 2, all sent by GUIDE (SH001); m1's used at 23:30 on Oct 2 (order paid 13,000),
    m2's used and refunded in full (reversed), m3's used at 00:30 on Oct 3 (27,000 paid);
    and BJ001's guide sends B to a Beijing member."""
    a, b = template(api, name="A券"), template(api, name="B券", amount_off_fen=3000)
    m1, m2, m3 = (fresh_member(session) for _ in range(3))
    c1, c2, c3 = issue(api, m1.id, a["id"]), issue(api, m2.id, a["id"]), issue(api, m3.id, b["id"])
    beijing = issue(api, fresh_member(session, OTHER_GUIDE).id, b["id"], phone=OTHER_GUIDE)
    session.execute(_at(c1["id"], issued_at=_utc(2026, 10, 1, 15, 59)))
    session.execute(_at(c2["id"], issued_at=_utc(2026, 10, 1, 16, 0)))
    session.execute(_at(c3["id"], issued_at=_utc(2026, 10, 2, 3)))
    session.execute(_at(beijing["id"], issued_at=_utc(2026, 10, 2, 3)))
    redeem(api, [c1["code"]], order_no="POS-O1", amount_fen=15000)
    redeem(api, [c2["code"]], order_no="POS-O2", amount_fen=12000)
    redeem(api, [c3["code"]], order_no="POS-O3", amount_fen=30000)
    _order(api, m1, "POS-O1", 13000)
    _order(api, m2, "POS-O2", 10000)
    _order(api, m3, "POS-O3", 27000)
    refund = {"channel": "pos", "order_no": "POS-O2", "refund_no": "RF-O2", "amount_fen": 10000}
    assert api.post(HQ, "/api/v1/orders/refunds", json=refund).status_code == 200
    for coupon_id, at in (
        (c1["id"], _utc(2026, 10, 2, 15, 30)),
        (c3["id"], _utc(2026, 10, 2, 16, 30)),
    ):
        session.execute(
            update(CouponRedemption)
            .where(CouponRedemption.coupon_id == coupon_id)
            .values(redeemed_at=at)
        )
    session.execute(  # the reversed one falls inside the window too: still left out
        update(CouponRedemption)
        .where(CouponRedemption.coupon_id == c2["id"])
        .values(redeemed_at=_utc(2026, 10, 2, 5))
    )
    return a, b


def _report(api, who=HQ, status=200, **query):
    query = {"from": "2026-10-01", "to": "2026-10-03", **query}
    response = api.get(who, REPORT + "?" + "&".join(f"{k}={v}" for k, v in query.items()))
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _figures(row):
    keys = ("issued", "redeemed", "redemption_rate", "discount_fen", "orders", "gmv_fen")
    return tuple(row[k] for k in keys)


def test_the_report_by_day_template_and_guide_against_hand_computed_figures(api, session):
    a, b = _october(api, session)
    by_day = _report(api, group_by="day")
    assert by_day["timezone"] == "Asia/Shanghai"
    assert {r["key"]: _figures(r) for r in by_day["rows"]} == {
        "2026-10-01": (1, 0, 0.0, 0, 0, 0),
        "2026-10-02": (3, 1, 0.3333, 2000, 1, 13000),  # m2's, m3's and Beijing's issues
        "2026-10-03": (0, 1, None, 3000, 1, 27000),
    }
    assert _figures(by_day["totals"]) == (4, 2, 0.5, 5000, 2, 40000)

    by_template = _report(api, group_by="template")
    assert {r["key"]: (r["name"], *_figures(r)) for r in by_template["rows"]} == {
        b["id"]: ("B券", 2, 1, 0.5, 3000, 1, 27000),
        a["id"]: ("A券", 2, 1, 0.5, 2000, 1, 13000),
    }
    only_a = _report(api, group_by="day", template_id=a["id"])
    assert _figures(only_a["totals"]) == (2, 1, 0.5, 2000, 1, 13000)

    # One local day: 00:00 is in, 23:59 the day before is not; 00:30 the day after is not.
    oct2 = _report(api, group_by="guide", **{"from": "2026-10-02", "to": "2026-10-02"})
    guide = staff_by_phone(session, GUIDE)
    mine = next(r for r in oct2["rows"] if r["key"] == guide.id)
    assert (mine["name"], *_figures(mine)) == (guide.name, 2, 1, 0.5, 2000, 1, 13000)
    assert _figures(oct2["totals"]) == (3, 1, 0.3333, 2000, 1, 13000)
    campaigns = _report(api, group_by="campaign")["rows"]
    assert [(r["key"], r["issued"]) for r in campaigns] == [(None, 4)]


def test_a_manager_sees_only_their_store_and_a_guide_no_report(api, session):
    _october(api, session)
    sh001 = store_by_code(session, "SH001")
    hq = _report(api, group_by="store")
    assert {r["key"] for r in hq["rows"]} == {sh001.id, store_by_code(session, "BJ001").id}
    manager = _report(api, MANAGER, group_by="store")
    assert [(r["key"], r["name"]) for r in manager["rows"]] == [(sh001.id, sh001.name)]
    assert _figures(manager["totals"]) == (3, 2, 0.6667, 5000, 2, 40000)
    _report(api, GUIDE, status=403)
    _report(api, HQ, status=422, group_by="month")
    _report(api, HQ, status=422, **{"from": "2026-10-05"})
    _report(api, HQ, status=422, **{"from": "2025-01-01"})
    _report(api, HQ, status=404, template_id="nosuchtemplate")


def test_the_report_exports_to_xlsx_through_a_job(api, app, session):
    a, b = _october(api, session)
    accepted = api.post(
        HQ,
        f"{REPORT}/exports",
        json={"group_by": "template", "from": "2026-10-01", "to": "2026-10-03"},
    )
    assert accepted.status_code == 202, accepted.get_json()
    job = accepted.get_json()
    assert job["kind"] == "coupons.report_export"
    run_jobs(app)
    done = api.get(HQ, job["url"]).get_json()
    assert done["state"] == "succeeded", done
    assert done["result"]["filename"] == "优惠券报表-券模板-2026-10-01-2026-10-03.xlsx"
    sent = api.get(HQ, done["result"]["download_url"])
    assert sent.status_code == 200
    sheet = load_workbook(io.BytesIO(sent.data)).active
    rows = [tuple(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][0] == "优惠券报表 2026-10-01 至 2026-10-03"
    assert rows[1] == (
        "券模板ID",
        "名称",
        "发放",
        "核销",
        "核销率",
        "优惠(分)",
        "优惠(元)",
        "订单数",
        "订单实付GMV(分)",
        "订单实付GMV(元)",
    )
    by_key = {r[0]: r[1:] for r in rows[2:]}
    assert by_key[b["id"]] == ("B券", 2, 1, 0.5, 3000, 30, 1, 27000, 270)
    assert by_key[a["id"]] == ("A券", 2, 1, 0.5, 2000, 20, 1, 13000, 130)
    assert rows[-1] == ("合计", None, 4, 2, 0.5, 5000, 50, 2, 40000, 400)
    refused = api.post(GUIDE, f"{REPORT}/exports", json={"group_by": "day"})
    assert refused.status_code == 403


def test_an_order_fed_before_its_redemption_counts_with_it_at_once(api, session):
    member = fresh_member(session)
    coupon = issue(api, member.id, template(api)["id"])
    _order(api, member, "POS-EARLY", 13000)
    redeem(api, [coupon["code"]], order_no="POS-EARLY", amount_fen=15000)
    linked = session.scalar(
        select(CouponRedemption).where(CouponRedemption.coupon_id == coupon["id"])
    )
    assert linked.order_id is not None
    today = datetime.now(timezone.utc).astimezone(ZoneInfo("Asia/Shanghai")).date()
    window = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}
    totals = _report(api, **window)["totals"]
    assert _figures(totals) == (1, 1, 1.0, 2000, 1, 13000)
