"""Imported orders and refunds earn and claw back exactly as POST /orders and
POST /orders/refunds do (the same signals, the same rules), set-based for large files; so do
members an import creates with a guide, as POST /members does."""

import io
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select, update

from guideapp.commissions import rules as maths
from guideapp.commissions.models import CommissionEntry, CommissionRecruit
from guideapp.db import utcnow
from guideapp.members.models import Binding, Member, Order, OrderRefund
from tests.conftest import GUIDE, HQ
from tests.factories import staff_by_phone

PHONE = "13566661234"


def upload_orders(api, *lines):
    content = "channel,order_no,amount_fen,ordered_at,phone,refund_amount\n" + "\n".join(lines)
    response = api.client.post(
        "/api/v1/imports/orders?wait=true",
        data={"file": (io.BytesIO((content + "\n").encode()), "orders.csv")},
        headers=api.headers(HQ),
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["failed"] == 0, report["errors"]
    return report


def capped_binding_rule(api):
    """10% of orders in the binding period, at most ¥15 per guide and month (besides the
    demo's 3% of first orders): a batch must count what it earned itself against the cap."""
    response = api.post(
        HQ,
        "/api/v1/commissions/rules",
        json={
            "name": "绑定期提成 10%",
            "kind": "order_percent",
            "rate_bp": 1000,
            "order_basis": "binding",
            "cap_fen": 1500,
            "effective_from": (utcnow() - timedelta(days=30)).isoformat(),
        },
    )
    assert response.status_code == 201, response.get_json()


def recruited_member(api, session, phone=PHONE) -> Member:
    """The guide registers the buyer in store (a bounty); bound since yesterday."""
    created = api.post(GUIDE, "/api/v1/members", json={"phone": phone, "name": "李四"})
    assert created.status_code == 201, created.get_json()
    member_id = created.get_json()["id"]
    yesterday = utcnow() - timedelta(days=1)
    session.execute(update(Member).where(Member.id == member_id).values(bound_at=yesterday))
    session.execute(
        update(Binding).where(Binding.member_id == member_id).values(started_at=yesterday)
    )
    return session.get(Member, member_id)


def ledger(session, member_id) -> list[tuple]:
    """The member's ledger lines, sources named by order number (ids differ between doors)."""
    session.expire_all()
    orders = dict(
        session.execute(select(Order.id, Order.order_no).where(Order.member_id == member_id)).all()
    )
    refunds = {
        r.id: f"{orders[r.order_id]} refund {r.amount_fen}"
        for r in session.scalars(select(OrderRefund).where(OrderRefund.order_id.in_(orders)))
    }
    entries = session.scalars(
        select(CommissionEntry).where(CommissionEntry.member_id == member_id)
    ).all()
    by_id = {e.id: e for e in entries}

    def source(entry):
        return orders.get(entry.source_id) or refunds.get(entry.source_id) or entry.source_type

    return sorted(
        (
            e.kind,
            source(e),
            e.amount_fen,
            e.basis_fen,
            e.accounting_month,
            e.rule_id,
            e.guide_id,
            source(by_id[e.reverses_id]) if e.reverses_id else None,
        )
        for e in entries
    )


def through_rest(api, orders, refunds):
    for order_no, amount, at, _ in orders:
        body = {
            "channel": "pos",
            "order_no": order_no,
            "amount_fen": amount,
            "ordered_at": at,
            "phone": PHONE,
        }
        assert api.post(HQ, "/api/v1/orders", json=body).status_code == 200
    for order_no, amount in refunds:
        body = {"channel": "pos", "order_no": order_no, "refund_no": f"R-{order_no}"}
        response = api.post(HQ, "/api/v1/orders/refunds", json={**body, "amount_fen": amount})
        assert response.status_code == 200, response.get_json()


def through_imports(api, orders, refunds):
    later = dict(refunds)
    upload_orders(
        api,
        *[
            f"pos,{no},{amount},{at},{PHONE},{f'{same_row / 100:.2f}' if same_row else ''}"
            for no, amount, at, same_row in orders
        ],
    )
    # a later export of the same orders, now with refunds: the import records the difference
    refunded = {no: same_row for no, _, _, same_row in orders}
    rows = [
        f"pos,{no},{amount},{at},{PHONE},{(refunded[no] + later[no]) / 100:.2f}"
        for no, amount, at, _ in orders
        if later.get(no)
    ]
    if rows:
        upload_orders(api, *rows)


def test_imported_orders_and_refunds_earn_and_claw_back_like_rest(api, session):
    capped_binding_rule(api)
    at = (utcnow() - timedelta(minutes=10)).replace(microsecond=0).isoformat()
    # (order_no, fen, ordered_at, refunded in the same row); then (order_no, refunded later)
    orders = [("D-1", 10000, at, 4000), ("D-2", 8000, at, 0), ("D-3", 5000, at, 0)]
    refunds_rest = [("D-1", 4000), ("D-2", 8000)]
    ledgers = {}
    api.headers(GUIDE)  # log in outside the savepoints
    for door in ("rest", "import"):
        savepoint = session.begin_nested()
        session.connection()  # the SAVEPOINT is taken now, before the app writes
        member = recruited_member(api, session)
        if door == "rest":
            through_rest(api, orders, refunds_rest)
        else:
            through_imports(api, orders, [("D-2", 8000)])
        ledgers[door] = ledger(session, member.id)
        savepoint.rollback()
    assert ledgers["import"] == ledgers["rest"]
    lines = {(kind, source, amount) for kind, source, amount, *_ in ledgers["rest"]}
    assert {
        ("bounty", "recruit", 500),
        ("order", "D-1", 300),  # 3% of the first order
        ("order", "D-1", 1000),  # 10% in the binding period...
        ("order", "D-2", 500),  # ...up to the ¥15 cap
        ("clawback", "D-1 refund 4000", -120),
        ("clawback", "D-1 refund 4000", -400),
        ("clawback", "D-2 refund 8000", -500),
    } == lines  # D-3 earns nothing: the cap is used up, and it was not the first order


def test_a_large_orders_file_costs_the_same_statements_as_a_small_one(api, session, connection):
    """Commissions of an imported batch are computed set-based: a file of 40 orders of bound
    members runs as many statements as a file of 4."""
    capped_binding_rule(api)
    at = (utcnow() - timedelta(minutes=10)).replace(microsecond=0).isoformat()
    statements = []  # per file, while it is imported

    def count(*_args, **_kwargs):
        if counting:
            statements[-1] += 1

    counting = False
    event.listen(connection, "before_cursor_execute", count)
    try:
        for size, first in ((4, 0), (40, 100)):
            phones = [f"1356667{first + i:04d}" for i in range(size)]
            for phone in phones:
                recruited_member(api, session, phone)
            statements.append(0)
            counting = True
            upload_orders(
                api, *[f"pos,B-{p},{9000 + i},{at},{p},1.00" for i, p in enumerate(phones)]
            )
            counting = False
    finally:
        event.remove(connection, "before_cursor_execute", count)
    small, large = statements
    assert large == small
    earned = session.scalars(
        select(CommissionEntry.amount_fen).where(
            CommissionEntry.kind == "order", CommissionEntry.basis_fen >= 9000
        )
    ).all()
    assert len(earned) > 40  # first orders (3%) all, binding (10%) until the cap


# --- members an import creates with a guide are recruits --------------------------------


def upload_members(api, header, *lines, query="?wait=true"):
    content = header + "\n" + "\n".join(lines) + "\n"
    response = api.client.post(
        f"/api/v1/imports/members{query}",
        data={"file": (io.BytesIO(content.encode()), "members.csv")},
        headers=api.headers(HQ),
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["failed"] == 0, report["errors"]
    return report


def recruits_of(session, phones) -> dict:
    """phone -> (source, state, recruited_at, month, bounty fen) of each recruited member."""
    session.expire_all()
    rows = session.execute(
        select(
            Member.phone,
            CommissionRecruit.source,
            CommissionRecruit.state,
            CommissionRecruit.recruited_at,
            CommissionRecruit.month,
            CommissionEntry.amount_fen,
        )
        .join(CommissionRecruit, CommissionRecruit.member_id == Member.id)
        .outerjoin(
            CommissionEntry,
            (CommissionEntry.source_id == Member.id) & (CommissionEntry.kind == "bounty"),
        )
        .where(Member.phone.in_(list(phones)))
    ).all()
    return {phone: tuple(rest) for phone, *rest in rows}


@pytest.mark.parametrize("registered", ["注册时间", "registered_at"])
def test_an_import_recruits_the_members_it_creates_with_a_guide(api, session, registered):
    """Dated by 注册时间 when the file has it, else by the import's start; members it only
    updates or rebinds are no recruits (as POST /members/<id>/binding); a dry run books
    nothing; importing the file again books nothing twice."""
    guide = staff_by_phone(session, GUIDE)
    pooled = session.scalar(
        select(Member).where(Member.store_id == guide.store_id, Member.guide_id.is_(None))
    )
    header = f"手机号,姓名,导购手机号,{registered}"
    lines = [
        f"13577781001,甲,{GUIDE},2026-11-05 10:30",  # Asia/Shanghai: 02:30 UTC
        f"13577781002,乙,{GUIDE},",
        "13577781003,丙,,",  # no guide: a pool member, no recruit
        f"{pooled.phone},,{GUIDE},",  # an existing member bound to the guide: a rebind
    ]
    dry = upload_members(api, header, *lines, query="?wait=true&dry_run=true")
    assert dry["imported"] == 3 and recruits_of(session, ["13577781001"]) == {}
    report = upload_members(api, header, *lines)
    assert (report["imported"], report["updated"]) == (3, 1)
    started = session.scalar(select(Member.bound_at).where(Member.phone == "13577781002"))
    november = datetime(2026, 11, 5, 2, 30, tzinfo=timezone.utc)
    assert recruits_of(session, [line.split(",")[0] for line in lines]) == {
        "13577781001": ("import", "counted", november, "2026-11", 500),
        "13577781002": ("import", "counted", started, month_of(started), 500),
    }
    again = upload_members(api, header, *lines)
    assert again["imported"] == 0
    assert (
        session.scalar(
            select(func.count(CommissionRecruit.id)).where(
                CommissionRecruit.member_id.in_(
                    select(Member.id).where(Member.phone.in_(["13577781001", "13577781002"]))
                )
            )
        )
        == 2
    )


def month_of(moment) -> str:
    return maths.month_of(moment, "Asia/Shanghai")


def test_a_large_members_file_costs_the_same_statements_as_a_small_one(api, session, connection):
    """An import's recruits are booked set-based: 40 members with guides run as many
    statements as 4, and every one of them earns its bounty."""
    statements = []

    def count(*_args, **_kwargs):
        if counting:
            statements[-1] += 1

    counting = False
    api.headers(HQ)
    event.listen(connection, "before_cursor_execute", count)
    try:
        for size, first in ((4, 0), (40, 100)):
            statements.append(0)
            counting = True
            upload_members(
                api,
                "手机号,姓名,导购手机号",
                *[f"1357779{first + i:04d},新客{i},{GUIDE}" for i in range(size)],
            )
            counting = False
    finally:
        event.remove(connection, "before_cursor_execute", count)
    small, large = statements
    assert large == small
    phones = [f"1357779{100 + i:04d}" for i in range(40)]
    booked = recruits_of(session, phones)
    assert len(booked) == 40 and {b[1:2] + b[4:] for b in booked.values()} == {("counted", 500)}
