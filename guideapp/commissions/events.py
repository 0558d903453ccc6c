"""Receivers of the members signals: orders, refunds and merges become ledger entries
(connected in guideapp/wiring.py; recruits are in recruits.py).

Attribution is the member's guide at the event (orders carry it as `orders.guide_id`), so a
transfer moves future earnings and never touches past entries.
"""

from __future__ import annotations

from typing import Any, Sequence, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from guideapp.commissions import ledger
from guideapp.commissions import rules as maths
from guideapp.commissions.models import CommissionEntry, CommissionRecruit, CommissionRule
from guideapp.commissions.reads import people, rows_in, used_under_caps
from guideapp.db import utcnow
from guideapp.members.models import Member, Order, OrderRefund
from guideapp.org.models import Staff, Store


def on_orders_recorded(session: Session, *, tenant_id: str, order_ids: list, **_ignored) -> None:
    """New orders of bound members earn their guide (then) a percentage under each rule in
    force. POST /orders sends one order, an import a batch: the same rules, computed in a
    fixed number of statements per BATCH (reads.py) orders, applied in the order they were recorded
    (monthly caps, first orders)."""
    orders = rows_in(
        session,
        select(
            Order.id,
            Order.member_id,
            Order.guide_id,
            Order.amount_fen,
            Order.ordered_at,
        ).where(Order.tenant_id == tenant_id),
        Order.id,
        order_ids,
    )
    position = {order_id: i for i, order_id in enumerate(dict.fromkeys(order_ids))}
    orders.sort(key=lambda o: position[o.id])
    guides = {
        g.id: g
        for g in rows_in(
            session,
            select(Staff.id, Staff.store_id, Store.region_id)
            .join(Store, Store.id == Staff.store_id)
            .where(Staff.role == "guide"),
            Staff.id,
            {o.guide_id for o in orders if o.guide_id},
        )
    }
    earning = [o for o in orders if o.guide_id in guides]
    if not earning:
        return
    members = people(session, {o.member_id for o in earning})
    staff_phones = set(
        rows_in(
            session,
            select(Staff.phone),
            Staff.phone,
            {p for m in members.values() for p in (m.phone, m.person.phone) if p},
            scalars=True,
        )
    )
    earning = [
        o
        for o in earning
        if members[o.member_id].phone not in staff_phones
        and members[o.member_id].person.phone not in staff_phones
    ]
    if not earning:
        return
    persons = {members[o.member_id].person.id for o in earning}
    campaigns = dict(
        rows_in(
            session,
            select(CommissionRecruit.person_id, CommissionRecruit.campaign_id).where(
                CommissionRecruit.tenant_id == tenant_id, CommissionRecruit.state == "counted"
            ),
            CommissionRecruit.person_id,
            persons,
        )
    )
    versions = session.scalars(
        select(CommissionRule).where(
            CommissionRule.tenant_id == tenant_id, CommissionRule.kind == "order_percent"
        )
    ).all()
    firsts = _first_orders(session, orders, {o.member_id for o in earning}, versions)
    paid = _booked(session, tenant_id, "order", "order", {o.id for o in earning})
    evs = ledger.events(session, tenant_id, {o.ordered_at for o in earning})
    due = []  # (event, rule, guide, order, person id, amount) in the order they pay
    for order in earning:
        guide, person = guides[order.guide_id], members[order.member_id].person
        ev = evs[order.ordered_at]
        for rule in ledger.rules_in_force(
            versions,
            at=ev.at,
            store_id=guide.store_id,
            region_id=guide.region_id,
            campaign_id=campaigns.get(person.id),
        ):
            if (order.id, rule.id) in paid:
                continue  # a replayed announcement earns nothing twice
            if rule.order_basis == "first":
                if order.id not in firsts:
                    continue
            elif not _within_binding(person, order):
                continue
            amount = maths.percent_of(order.amount_fen, rule.rate_bp or 0)
            due.append((ev, rule, guide, order, person.id, amount))
    used = _used_under_caps(session, tenant_id, due)
    rows = []
    for ev, rule, guide, order, person_id, amount in due:
        if rule.cap_fen is not None:
            key = (rule.rule_key, guide.id, ev.accounting_month)
            amount = maths.capped(amount, rule.cap_fen, used.get(key, 0))
            used[key] = used.get(key, 0) + max(amount, 0)
        if amount > 0:
            rows.append(
                ledger.entry_row(
                    ev,
                    guide_id=guide.id,
                    store_id=guide.store_id,
                    member_id=person_id,
                    rule_id=rule.id,
                    kind="order",
                    source_type="order",
                    source_id=order.id,
                    amount_fen=amount,
                    basis_fen=order.amount_fen,
                )
            )
    ledger.write_many(session, rows)


def _within_binding(member, order) -> bool:
    """The order falls in the binding (lock) period of the member's current binding."""
    if member.bound_at is None or order.ordered_at < member.bound_at:
        return False
    return member.binding_locked_until is None or order.ordered_at < member.binding_locked_until


def _first_orders(session: Session, orders: list, member_ids: set, versions: Sequence) -> set:
    """Ids of the orders that were their member's first when recorded: no order of the member
    before this announcement, and the first of the announced ones (merges moved every order to
    the survivor, so a person's orders are its member's)."""
    if not any(v.order_basis == "first" for v in versions):
        return set()
    totals = dict(
        rows_in(
            session,
            select(Order.member_id, func.count(Order.id)).group_by(Order.member_id),
            Order.member_id,
            member_ids,
        )
    )
    announced: dict[str, int] = {}
    for order in orders:
        announced[order.member_id] = announced.get(order.member_id, 0) + 1
    firsts, seen = set(), set()
    for order in orders:
        if order.member_id in seen:
            continue
        seen.add(order.member_id)
        if totals.get(order.member_id, 0) == announced[order.member_id]:
            firsts.add(order.id)
    return firsts


def _used_under_caps(session: Session, tenant_id: str, due: list) -> dict:
    """What each guide already earned this accounting month under each capped rule of `due`."""
    keys = {
        (rule.rule_key, guide.id, ev.accounting_month)
        for ev, rule, guide, *_ in due
        if rule.cap_fen is not None
    }
    return used_under_caps(session, tenant_id, keys)


def on_refunds_recorded(session: Session, *, tenant_id: str, refund_ids: list, **_ignored) -> None:
    """Claw back each earning of the refunded orders in proportion to what is refunded by
    each refund (POST /orders/refunds sends one, an import a batch; the same maths)."""
    refunds = rows_in(
        session,
        select(
            OrderRefund.id,
            OrderRefund.order_id,
            OrderRefund.amount_fen,
            OrderRefund.refunded_at,
            OrderRefund.created_at,
        ).where(OrderRefund.tenant_id == tenant_id),
        OrderRefund.id,
        refund_ids,
    )
    position = {refund_id: i for i, refund_id in enumerate(dict.fromkeys(refund_ids))}
    refunds.sort(key=lambda r: position[r.id])
    earnings: dict[str, list[CommissionEntry]] = {}
    for entry in rows_in(
        session,
        select(CommissionEntry).where(
            CommissionEntry.tenant_id == tenant_id,
            CommissionEntry.source_type == "order",
            CommissionEntry.kind == "order",
        ),
        CommissionEntry.source_id,
        {r.order_id for r in refunds},
        scalars=True,
    ):
        earnings.setdefault(entry.source_id, []).append(entry)
    refunds = [r for r in refunds if r.order_id in earnings]
    if not refunds:
        return
    for entries in earnings.values():
        entries.sort(key=lambda e: (e.created_at, e.id))
    orders = {
        o.id: o
        for o in rows_in(
            session, select(Order.id, Order.amount_fen, Order.refunded_fen), Order.id, earnings
        )
    }
    corrections: dict[str, dict[str, int]] = {}  # earning id -> kind -> sum (negative fen)
    for reverses_id, kind, total in rows_in(
        session,
        select(
            CommissionEntry.reverses_id, CommissionEntry.kind, func.sum(CommissionEntry.amount_fen)
        ).group_by(CommissionEntry.reverses_id, CommissionEntry.kind),
        CommissionEntry.reverses_id,
        {e.id for entries in earnings.values() for e in entries},
    ):
        corrections.setdefault(reverses_id, {})[kind] = int(total)
    clawed_before = _booked(session, tenant_id, "refund", "clawback", {r.id for r in refunds})
    # orders.refunded_fen includes every announced refund: walk them up from before the first
    refunded = {o.id: o.refunded_fen for o in orders.values()}
    for refund in refunds:
        refunded[refund.order_id] -= refund.amount_fen
    # A clawback lands in the (open) month in which the refund is recorded (created_at),
    # whatever date the refund carries: a late-reported refund reduces the month being paid.
    evs = {}
    for booked in {r.created_at for r in refunds}:
        moments = {r.refunded_at for r in refunds if r.created_at == booked}
        for at, ev in ledger.events(session, tenant_id, moments, booked_at=booked).items():
            evs[(at, booked)] = ev
    rows = []
    for refund in refunds:
        order = orders[refund.order_id]
        refunded[order.id] += refund.amount_fen
        for entry in earnings[order.id]:
            if (refund.id, entry.rule_id) in clawed_before:
                continue  # a replayed announcement claws back nothing twice
            against = corrections.setdefault(entry.id, {})
            clawed = -against.get("clawback", 0)
            remaining = entry.amount_fen + sum(against.values())
            due = maths.clawback_due(
                earned_fen=entry.amount_fen,
                order_fen=order.amount_fen,
                refunded_fen=refunded[order.id],
                clawed_fen=clawed,
                remaining_fen=remaining,
            )
            if due <= 0:
                continue
            against["clawback"] = against.get("clawback", 0) - due
            rows.append(
                ledger.entry_row(
                    evs[(refund.refunded_at, refund.created_at)],
                    guide_id=entry.guide_id,
                    store_id=entry.store_id,
                    member_id=entry.member_id,
                    rule_id=entry.rule_id,
                    kind="clawback",
                    source_type="refund",
                    source_id=refund.id,
                    reverses_id=entry.id,
                    amount_fen=-due,
                    basis_fen=refund.amount_fen,
                )
            )
    ledger.write_many(session, rows)


def _booked(session: Session, tenant_id: str, source_type: str, kind: str, source_ids) -> set:
    """(source id, rule id) pairs already booked: what a re-announced order or refund skips."""
    stmt = select(CommissionEntry.source_id, CommissionEntry.rule_id).where(
        CommissionEntry.tenant_id == tenant_id,
        CommissionEntry.source_type == source_type,
        CommissionEntry.kind == kind,
    )
    return _pairs(rows_in(session, stmt, CommissionEntry.source_id, source_ids))


def _pairs(rows) -> set[tuple]:
    return {tuple(row) for row in rows}


def on_merge(session: Session, *, survivor: Member, merged: Member) -> dict:
    """Attribution follows the survivor; a person's second bounty or first-order pay reverses."""
    result = session.execute(
        update(CommissionRecruit)
        .where(
            CommissionRecruit.tenant_id == survivor.tenant_id,
            CommissionRecruit.person_id == merged.id,
        )
        .values(person_id=survivor.id)
    )
    moved = cast(CursorResult[Any], result).rowcount
    ev = ledger.event(session, survivor.tenant_id, utcnow())
    reversals = 0
    for recruit in ledger.mark_duplicates(
        session, tenant_id=survivor.tenant_id, person_id=survivor.id
    ):
        bounties = session.scalars(
            select(CommissionEntry).where(
                CommissionEntry.tenant_id == survivor.tenant_id,
                CommissionEntry.source_type == "recruit",
                CommissionEntry.source_id == recruit.member_id,
                CommissionEntry.kind == "bounty",
            )
        )
        for entry in bounties.all():
            reversals += ledger.reverse(
                session, ev, entry, source_type="merge", source_id=f"{merged.id}:{entry.id}"
            )
    member_ids = ledger.person_member_ids(session, survivor.id)
    firsts = session.execute(
        select(CommissionEntry, CommissionRule.rule_key)
        .join(CommissionRule, CommissionRule.id == CommissionEntry.rule_id)
        .where(
            CommissionEntry.member_id.in_(member_ids),
            CommissionEntry.kind == "order",
            CommissionRule.order_basis == "first",
        )
        .order_by(CommissionEntry.event_at, CommissionEntry.id)
    ).all()
    kept: set[str] = set()
    for entry, rule_key in firsts:
        if rule_key not in kept:
            kept.add(rule_key)
            continue
        reversals += ledger.reverse(
            session, ev, entry, source_type="merge", source_id=f"{merged.id}:{entry.id}"
        )
    return {"commission_recruits": moved, "commission_reversals": reversals}
