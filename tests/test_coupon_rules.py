"""Coupons issued by HQ's automation rules, each once per member and occasion: on orders
(POST /orders and imports, set-based), and from the scheduler tick (birthday, joining,
silence, reaching a tier) in business hours, after downtime too; points exchanged for
coupons; expiry care (the sweep, the change log, the coupon_expiring SOP task)."""

import io
import itertools
import threading
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from guideapp.changelog import ChangeLogEntry, stamp_pending_changes
from guideapp.coupons.models import Coupon, CouponRule
from guideapp.db import make_engine, transaction, utcnow
from guideapp.members.binding import bind
from guideapp.members.identity import create_member
from guideapp.members.models import Member, PointsEntry
from guideapp.tasks.models import Task, TaskTarget
from guideapp.tasks.scheduler import tick
from tests.conftest import FIXTURES, GUIDE, HQ, OTHER_GUIDE, RIVAL_HQ
from tests.databases import backends, run_in_threads, scratch_database
from tests.factories import staff_by_phone
from tests.test_coupons import issue, template

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = "/api/v1/coupon-rules"
_phones = itertools.count(1)
_orders = itertools.count(1)


def _day(offset: int) -> date:
    return datetime.now(SHANGHAI).date() + timedelta(days=offset)


def _local(offset: int, hour: int, minute: int = 0) -> datetime:
    """A moment of the local day `offset` days from today, in UTC (as a tick gets it)."""
    return datetime.combine(_day(offset), time(hour, minute), SHANGHAI).astimezone(timezone.utc)


def rule(api, occasion, template_id, status=201, **fields):
    body = {"name": f"{occasion} 券", "occasion": occasion, "template_id": template_id, **fields}
    response = api.post(HQ, RULES, json=body)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def member(session, *, joined_at=None, birthday=None, phone=None):
    guide = staff_by_phone(session, GUIDE)
    made = create_member(
        session,
        tenant_id=guide.tenant_id,
        phone=phone or f"1357{next(_phones):07d}",
        source_channel="pos",
        joined_at=joined_at,
        birthday=birthday,
    )
    bind(session, member=made, guide=guide, reason="recruited")
    session.flush()
    return made


def order(api, buyer, **fields):
    body = {
        "channel": "pos",
        "order_no": f"RULE-{next(_orders)}",
        "amount_fen": 10000,
        "phone": buyer.phone,
        "ordered_at": datetime.now(timezone.utc).isoformat(),
        **fields,
    }
    response = api.post(HQ, "/api/v1/orders", json=body)
    assert response.status_code == 200, response.get_json()
    return body


def coupons_of(session, made_rule, buyer=None):
    session.expire_all()
    stmt = select(Coupon).where(Coupon.source == "rule", Coupon.source_id == made_rule["id"])
    if buyer is not None:
        stmt = stmt.where(Coupon.member_id == buyer.id)
    return session.scalars(stmt.order_by(Coupon.issued_at, Coupon.issue_key)).all()


def occasions(session, made_rule, buyer):
    return [c.issue_key.rsplit(f"{buyer.id}:", 1)[1] for c in coupons_of(session, made_rule, buyer)]


def fields(payload) -> dict:
    """The fields a 422 names (a schema's under "json", a service's at the top)."""
    errors = payload.get("errors") or {}
    return errors.get("json", errors)


def tenant_of(session):
    return staff_by_phone(session, HQ).tenant_id


# --- the rules ----------------------------------------------------------------------------


def test_hq_writes_rules_naming_an_active_template(api, session):
    made = template(api)
    birthday = rule(api, "birthday", made["id"], window_start="09:30")
    assert (birthday["window_start"], birthday["params"], birthday["active"]) == ("09:30", {}, True)
    nth = rule(api, "nth_order", made["id"], params={"n": 3})
    listed = api.get(HQ, f"{RULES}?occasion=nth_order").get_json()["items"]
    assert [r["id"] for r in listed] == [nth["id"]]
    changed = api.patch(HQ, f"{RULES}/{nth['id']}", json={"params": {"n": 4}, "active": False})
    assert changed.status_code == 200 and changed.get_json()["params"] == {"n": 4}
    assert api.get(HQ, f"{RULES}/{nth['id']}").get_json()["active"] is False

    paused = template(api, active=False)
    rival = template(api, RIVAL_HQ)
    for template_id in ("no-such-template", paused["id"], rival["id"]):
        refused = rule(api, "first_order", template_id, status=422)
        assert "template_id" in fields(refused), refused
    bad_params = [
        ("nth_order", {}),
        ("nth_order", {"n": 1}),
        ("silent", {"silent_days": "60"}),
        ("tier_changed", {"tier": "diamond"}),
        ("birthday", {"n": 2}),
    ]
    for occasion, params in bad_params:
        refused = rule(api, occasion, made["id"], params=params, status=422)
        assert "params" in fields(refused), (occasion, refused)
    patch = api.patch(HQ, f"{RULES}/{nth['id']}", json={"params": {"tier": "gold"}})
    assert patch.status_code == 422 and "params" in patch.get_json()["errors"], patch.get_json()
    patch = api.patch(HQ, f"{RULES}/{nth['id']}", json={"template_id": paused["id"]})
    assert patch.status_code == 422 and "template_id" in patch.get_json()["errors"]
    patch = api.patch(HQ, f"{RULES}/{nth['id']}", json={"occasion": "birthday"})
    assert patch.status_code == 422  # the occasion stays what coupons were issued for
    # Rules are HQ's: a guide sees none and writes none.
    assert api.get(GUIDE, RULES).get_json()["items"] == []
    assert api.get(GUIDE, f"{RULES}/{nth['id']}").status_code == 404
    body = {"name": "x", "occasion": "birthday", "template_id": made["id"]}
    assert api.post(GUIDE, RULES, json=body).status_code == 403
    assert session.scalar(select(func.count()).select_from(CouponRule)) == 2


# --- orders -------------------------------------------------------------------------------


def test_first_and_nth_order_fire_once_each(api, session):
    first = rule(api, "first_order", template(api, name="首购一元券", amount_off_fen=100)["id"])
    second = rule(api, "nth_order", template(api, name="复购八折")["id"], params={"n": 2})
    buyer = member(session)
    placed = order(api, buyer)
    assert occasions(session, first, buyer) == ["order:1"]
    assert coupons_of(session, second, buyer) == []
    order(api, buyer, order_no=placed["order_no"])  # a replayed webhook
    assert len(coupons_of(session, first, buyer)) == 1
    order(api, buyer)
    order(api, buyer)
    assert occasions(session, first, buyer) == ["order:1"]
    assert occasions(session, second, buyer) == ["order:2"]
    coupon = coupons_of(session, first, buyer)[0]
    assert (coupon.state, coupon.issued_by, coupon.store_id) == ("available", None, buyer.store_id)
    # A refund in full takes nothing back.
    refund = {"channel": "pos", "order_no": placed["order_no"], "refund_no": "R1"}
    refunded = api.post(HQ, "/api/v1/orders/refunds", json={**refund, "amount_fen": 10000})
    assert refunded.status_code == 200, refunded.get_json()
    assert [c.state for c in coupons_of(session, first, buyer)] == ["available"]


def test_an_order_refunded_in_full_does_not_count_and_paused_rules_wait(api, session):
    second = rule(api, "nth_order", template(api)["id"], params={"n": 2})
    buyer = member(session)
    placed = order(api, buyer)
    refund = {"channel": "pos", "order_no": placed["order_no"], "refund_no": "R1"}
    assert (
        api.post(HQ, "/api/v1/orders/refunds", json={**refund, "amount_fen": 10000}).status_code
        == 200
    )
    order(api, buyer)  # the first paid order
    assert coupons_of(session, second, buyer) == []
    api.patch(HQ, f"{RULES}/{second['id']}", json={"active": False})
    other = member(session)
    order(api, other)
    order(api, other)
    assert coupons_of(session, second, other) == []
    api.patch(HQ, f"{RULES}/{second['id']}", json={"active": True})
    order(api, buyer)  # the second paid order
    assert occasions(session, second, buyer) == ["order:2"]


def upload_orders(api, rows):
    lines = ["channel,order_no,amount_fen,ordered_at,phone"]
    at = (utcnow() - timedelta(hours=1)).isoformat()
    lines += [f"pos,{number},5000,{at},{phone}" for number, phone in rows]
    response = api.client.post(
        "/api/v1/imports/orders?wait=true",
        data={"file": (io.BytesIO(("\n".join(lines) + "\n").encode()), "orders.csv")},
        headers=api.headers(HQ),
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["failed"] == 0, response.get_json()


def test_an_import_batch_fires_set_based(api, session, connection):
    first = rule(api, "first_order", template(api)["id"])
    second = rule(api, "nth_order", template(api)["id"], params={"n": 2})
    earlier = member(session)
    order(api, earlier)
    buyers = [member(session) for _ in range(3)]  # one, two and three orders in the file
    rows = [(f"IMP-{i}-{k}", b.phone) for i, b in enumerate(buyers) for k in range(i + 1)]
    upload_orders(api, [*rows, ("IMP-E", earlier.phone)])
    for buyer, expected in zip(buyers, (["order:1"], ["order:1"], ["order:1"]), strict=True):
        assert occasions(session, first, buyer) == expected
    assert [occasions(session, second, b) for b in buyers] == [[], ["order:2"], ["order:2"]]
    assert occasions(session, first, earlier) == ["order:1"]
    assert occasions(session, second, earlier) == ["order:2"]

    # The statements a batch costs do not grow with its size.
    def statements_for(count):
        fresh = [member(session) for _ in range(count)]
        seen = []
        listen = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(connection, "before_cursor_execute", listen)
        try:
            upload_orders(api, [(f"SIZE-{count}-{i}", m.phone) for i, m in enumerate(fresh)])
        finally:
            event.remove(connection, "before_cursor_execute", listen)
        assert all(occasions(session, first, m) == ["order:1"] for m in fresh)
        return seen

    assert len(statements_for(2)) == len(statements_for(12))


# --- the scheduler's occasions -----------------------------------------------------------


def test_birthday_once_a_year_in_business_hours_and_after_downtime(api, session):
    made = rule(api, "birthday", template(api, per_member_limit=5)["id"])
    tenant_id = tenant_of(session)
    soon, later = _day(1), _day(3)
    one = member(session, birthday=soon.replace(year=1992))
    other = member(session, birthday=later.replace(year=1992))
    tick(session, tenant_id=tenant_id, now=_local(0, 12))
    tick(session, tenant_id=tenant_id, now=_local(1, 3))  # 3 a.m.: before business hours
    assert coupons_of(session, made, one) == []
    tick(session, tenant_id=tenant_id, now=_local(1, 11))
    assert occasions(session, made, one) == [f"birthday:{soon.year}"]
    assert coupons_of(session, made, one)[0].issued_at == _local(1, 11)
    for hour, minute in ((11, 0), (17, 42), (23, 59)):
        tick(session, tenant_id=tenant_id, now=_local(1, hour, minute))
    # Down for three days: the tick at 2 a.m. on day 5 goes through day 3 (a day gone by).
    run = tick(session, tenant_id=tenant_id, now=_local(5, 2))
    assert (run.from_day, run.through_day) == (soon, _day(5))
    assert occasions(session, made, other) == [f"birthday:{later.year}"]
    assert len(coupons_of(session, made, one)) == 1
    # Next year's birthday is another occasion.
    next_year = datetime.combine(soon.replace(year=soon.year + 1), time(11), SHANGHAI)
    tick(session, tenant_id=tenant_id, now=next_year)
    assert occasions(session, made, one) == [f"birthday:{soon.year}", f"birthday:{soon.year + 1}"]


def test_leap_day_birthdays_are_on_the_28th_in_common_years(api, session):
    made = rule(api, "birthday", template(api, per_member_limit=5)["id"])
    session.execute(
        update(CouponRule)
        .where(CouponRule.id == made["id"])
        .values(created_at=datetime(2020, 1, 1, tzinfo=timezone.utc))
    )
    leapling = member(session, birthday=date(2000, 2, 29))
    tenant_id = tenant_of(session)
    for day in (date(2027, 2, 27), date(2027, 2, 28), date(2028, 2, 28)):
        tick(session, tenant_id=tenant_id, now=datetime.combine(day, time(12), SHANGHAI))
        expected = [] if day == date(2027, 2, 27) else ["birthday:2027"]
        assert occasions(session, made, leapling) == expected, day
    tick(session, tenant_id=tenant_id, now=datetime.combine(date(2028, 2, 29), time(12), SHANGHAI))
    assert occasions(session, made, leapling) == ["birthday:2027", "birthday:2028"]


def test_joining_waits_for_the_rules_window(api, session):
    made = rule(api, "member_joined", template(api)["id"], window_start="18:00")
    tenant_id = tenant_of(session)
    newcomer = member(session, joined_at=_local(0, 0, 30))
    colleague = member(session, joined_at=_local(0, 0, 30), phone=OTHER_GUIDE)  # staff: none
    tick(session, tenant_id=tenant_id, now=_local(0, 17, 59))
    assert coupons_of(session, made, newcomer) == []
    tick(session, tenant_id=tenant_id, now=_local(0, 18, 0))
    tick(session, tenant_id=tenant_id, now=_local(1, 9))
    assert occasions(session, made, newcomer) == ["joined"]
    assert coupons_of(session, made, colleague) == []


def test_silent_members_are_won_back_once_per_silence(api, session):
    made = rule(api, "silent", template(api)["id"], params={"silent_days": 30})
    tenant_id = tenant_of(session)
    quiet = member(session, joined_at=_local(-29, 12))  # 30 days silent tomorrow
    quieter_later = member(session, joined_at=_local(-28, 23, 50))
    tick(session, tenant_id=tenant_id, now=_local(0, 0, 5))
    assert coupons_of(session, made, quiet) == []
    for hour in (10, 15, 22):
        tick(session, tenant_id=tenant_id, now=_local(1, hour))
    assert occasions(session, made, quiet) == [f"silent:{_day(-29).isoformat()}"]
    assert coupons_of(session, made, quieter_later) == []
    tick(session, tenant_id=tenant_id, now=_local(2, 10))
    assert occasions(session, made, quieter_later) == [f"silent:{_day(-28).isoformat()}"]
    assert len(coupons_of(session, made, quiet)) == 1


def upload_members(api, content, mode="fill"):
    response = api.client.post(
        f"/api/v1/imports/members?wait=true&mode={mode}",
        data={"file": (io.BytesIO(content.encode()), "members.csv")},
        headers=api.headers(HQ),
        content_type="multipart/form-data",
    )
    assert response.status_code == 200 and response.get_json()["failed"] == 0, response.get_json()


def test_reaching_a_tier_fires_once_per_tier(api, session):
    made = rule(
        api, "tier_changed", template(api, per_member_limit=3)["id"], params={"tier": "gold"}
    )
    tenant_id = tenant_of(session)
    riser = member(session)
    tick(session, tenant_id=tenant_id, now=_local(0, 0, 5))
    upload_members(api, f"phone,tier\n{riser.phone},gold\n13579999001,gold\n")
    tick(session, tenant_id=tenant_id, now=_local(1, 2))  # today is a day gone by now
    assert occasions(session, made, riser) == ["tier:gold"]
    newcomer = session.scalar(select(Member).where(Member.phone == "13579999001"))
    assert newcomer.tier == "gold" and coupons_of(session, made, newcomer) == []  # came gold
    # Down and up again the same day: gold was reached before, nothing twice.
    upload_members(api, f"phone,tier\n{riser.phone},silver\n", mode="overwrite")
    upload_members(api, f"phone,tier\n{riser.phone},gold\n")
    tick(session, tenant_id=tenant_id, now=_local(1, 12))
    tick(session, tenant_id=tenant_id, now=_local(2, 12))
    assert occasions(session, made, riser) == ["tier:gold"]


@pytest.mark.parametrize("backend", backends())
def test_concurrent_ticks_and_orders_issue_each_occasion_once(backend, tmp_path_factory):
    from alembic import command

    from guideapp.coupons import automation
    from guideapp.coupons.service import create_template
    from guideapp.demo import load_demo
    from guideapp.members.orders import ingest_order
    from guideapp.migrations import alembic_config
    from guideapp.policy.actor import Actor

    def make_rule(s, hq, occasion, **params):
        data = {"name": occasion, "kind": "amount_off", "amount_off_fen": 500, "valid_days": 7}
        data.update(store_ids=[], region_ids=[], channels=[])
        made = create_template(s, actor=hq, data=data)
        rule_data = {"name": occasion, "occasion": occasion, "template_id": made.id}
        rule_data.update(params=params, window_start="10:00", active=True)
        return automation.create_rule(s, actor=hq, data=rule_data).id

    order_data = {"channel": "pos", "amount_fen": 100, "phone": "13578889999"}
    with scratch_database(backend, tmp_path_factory) as url:
        command.upgrade(alembic_config({}, url=url), "head")
        engine = make_engine(url)
        with Session(engine) as s, transaction(s):
            load_demo(s, FIXTURES)
            hq = Actor.for_staff(staff_by_phone(s, HQ))
            rules = [make_rule(s, hq, "birthday"), make_rule(s, hq, "nth_order", n=5)]
            rules.append(make_rule(s, hq, "first_order"))
            for i in range(20):
                member(s, birthday=_day(0).replace(year=1992), phone=f"1357888{i:04d}")
            member(s, phone="13578889999")  # the buyer of two orders at once
            tenant_id = hq.tenant_id
            for hours, number in ((5, "EARLY-1"), (4, "EARLY-2"), (0, "EARLY-3")):
                ordered_at = utcnow() - timedelta(hours=hours, minutes=1)
                ingest_order(
                    s,
                    tenant_id=tenant_id,
                    data={**order_data, "order_no": number, "ordered_at": ordered_at},
                )

        def at_once(work, count=4):
            barrier, errors = threading.Barrier(count), []

            def run():
                try:
                    barrier.wait()
                    with Session(engine) as s, transaction(s):
                        work(s)
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            run_in_threads(run, count)
            assert not errors, errors

        times = [_local(0, h, m) for h, m in ((10, 5), (12, 30), (15, 45), (23, 55))]
        at_once(lambda s: tick(s, tenant_id=tenant_id, now=times.pop()))
        # A regular's 4th and 5th orders at the same moment, older than their last: nothing
        # changes on the member row, and still the second counts five.
        numbers = ["TWIN-1", "TWIN-2"]
        data = {**order_data, "ordered_at": utcnow() - timedelta(hours=2)}
        at_once(
            lambda s: ingest_order(
                s, tenant_id=tenant_id, data={**data, "order_no": numbers.pop()}
            ),
            2,
        )
        with Session(engine) as s:
            issued = dict(
                s.execute(
                    select(Coupon.source_id, func.count())
                    .join(Member, Member.id == Coupon.member_id)
                    .where(Member.phone.like("1357888%"))
                    .group_by(Coupon.source_id)
                ).all()
            )
        # One coupon per member and rule (a per-member limit of one would refuse a second).
        assert issued == {rules[0]: 20, rules[1]: 1, rules[2]: 1}
        engine.dispose()


# --- points -------------------------------------------------------------------------------


def test_points_buy_a_coupon_once_and_too_few_points_write_nothing(api, session):
    priced = template(api, name="积分兑换券", points_cost=100, per_member_limit=2)
    buyer = member(session)
    earned = api.post(
        HQ, f"/api/v1/members/{buyer.id}/points", json={"kind": "earn", "points": 150}
    )
    assert earned.status_code == 201, earned.get_json()
    url = f"/api/v1/members/{buyer.id}/coupons/exchange"
    done = api.post(GUIDE, url, json={"template_id": priced["id"]})
    assert done.status_code == 201, done.get_json()
    answer = done.get_json()
    assert (answer["points_spent"], answer["points_balance"]) == (100, 50)
    assert answer["coupon"]["source"] == "points" and answer["coupon"]["status"] == "available"
    spend = session.scalar(
        select(PointsEntry).where(PointsEntry.id == answer["coupon"]["source_id"])
    )
    assert (spend.kind, spend.points, spend.member_id) == ("spend", -100, buyer.id)

    def written():
        session.expire_all()
        return (
            session.scalar(
                select(func.count()).select_from(Coupon).where(Coupon.member_id == buyer.id)
            ),
            session.scalar(
                select(func.count())
                .select_from(PointsEntry)
                .where(PointsEntry.member_id == buyer.id)
            ),
        )

    before = written()
    refused = api.post(GUIDE, url, json={"template_id": priced["id"]})
    assert refused.status_code == 409, refused.get_json()
    assert "50 points" in refused.get_json()["message"]
    assert refused.get_json()["errors"]["reason"] == ["not_enough_points"]
    free = template(api, name="不可兑换")
    not_for_points = api.post(GUIDE, url, json={"template_id": free["id"]})
    assert (
        not_for_points.status_code == 422 and "template_id" in not_for_points.get_json()["errors"]
    )
    rival = template(api, RIVAL_HQ, points_cost=1)
    foreign = api.post(GUIDE, url, json={"template_id": rival["id"]})
    assert foreign.status_code == 422 and "template_id" in foreign.get_json()["errors"]
    assert written() == before
    # A retry with the same Idempotency-Key spends once.
    api.post(HQ, f"/api/v1/members/{buyer.id}/points", json={"kind": "earn", "points": 200})
    key = {"Idempotency-Key": "exchange-1"}
    answers = [api.post(GUIDE, url, json={"template_id": priced["id"]}, headers=key) for _ in "ab"]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].get_json() == answers[1].get_json()
    assert answers[1].get_json()["points_balance"] == 150
    assert written() == (before[0] + 1, before[1] + 2)
    # At the per-member limit: refused before a point is spent.
    limited = api.post(GUIDE, url, json={"template_id": priced["id"]})
    assert limited.status_code == 409 and limited.get_json()["errors"]["reason"] == [
        "per_member_limit"
    ]
    assert written() == (before[0] + 1, before[1] + 2)


# --- expiry care --------------------------------------------------------------------------


def test_the_tick_expires_coupons_and_phones_hear_of_it(api, session):
    made = template(api)
    holder = member(session)
    lapsing = issue(api, holder.id, made["id"])
    lasting = issue(api, holder.id, template(api)["id"])
    now = utcnow()
    session.execute(
        update(Coupon)
        .where(Coupon.id == lapsing["id"])
        .values(valid_from=now - timedelta(days=2), valid_to=now - timedelta(minutes=1))
    )
    stamp_pending_changes(session)
    newest = session.scalar(select(func.max(ChangeLogEntry.seq))) or 0
    tick(session, tenant_id=holder.tenant_id, now=now)
    stamp_pending_changes(session)  # what the tick's commit does
    session.expire_all()
    expired = session.get(Coupon, lapsing["id"])
    assert (expired.state, expired.state_reason, expired.updated_at) == ("expired", "expired", now)
    assert session.get(Coupon, lasting["id"]).state == "available"
    scopes = session.scalars(
        select(ChangeLogEntry.scope).where(
            ChangeLogEntry.table_name == "coupons",
            ChangeLogEntry.record_id == lapsing["id"],
            ChangeLogEntry.seq > newest,
        )
    ).all()
    assert sorted(scopes) == sorted([f"g:{holder.guide_id}", f"s:{holder.store_id}"])
    logged = session.scalars(
        select(ChangeLogEntry.record_id).where(
            ChangeLogEntry.table_name == "coupons", ChangeLogEntry.seq > newest
        )
    ).all()
    assert lasting["id"] not in logged
    wallet = api.get(GUIDE, f"/api/v1/members/{holder.id}/coupons?status=expired").get_json()
    assert [(c["id"], c["state_reason"]) for c in wallet["items"]] == [(lapsing["id"], "expired")]


def test_a_coupon_about_to_expire_makes_a_guide_task(api, session):
    five_days = template(api, valid_days=5)  # issued today: usable through day 4
    other = template(api, valid_days=5)
    holder, unconcerned = member(session), member(session)
    issue(api, holder.id, five_days["id"])
    issue(api, unconcerned.id, other["id"])
    body = {
        "name": "券到期提醒",
        "trigger": "coupon_expiring",
        "params": {"template_id": five_days["id"]},
        "steps": [{"days": -3, "title": "提醒会员用券"}],
    }
    sop = api.post(HQ, "/api/v1/sop-rules", json=body)
    assert sop.status_code == 201, sop.get_json()
    wrong = api.post(HQ, "/api/v1/sop-rules", json={**body, "trigger": "birthday"})
    assert wrong.status_code == 422 and "params" in str(wrong.get_json()["errors"])

    def tasks():
        return session.scalars(
            select(TaskTarget.member_id)
            .join(Task, Task.id == TaskTarget.task_id)
            .where(Task.sop_rule_id == sop.get_json()["id"])
        ).all()

    tenant_id = holder.tenant_id
    tick(session, tenant_id=tenant_id, now=_local(0, 0, 5))
    assert tasks() == []
    for hour in (8, 16):
        tick(session, tenant_id=tenant_id, now=_local(1, hour))
    assert tasks() == [holder.id]
    task = session.scalar(select(Task).where(Task.sop_rule_id == sop.get_json()["id"]))
    assert task.assignee_id == holder.guide_id and task.title == "提醒会员用券"
