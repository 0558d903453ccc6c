"""Hook handlers: recruits, orders, refunds and merges become ledger entries (wired in wiring.py).

Attribution is the member's guide at the event (orders carry it as `orders.guide_id`), so a
transfer moves future earnings and never touches past entries.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from guideapp.commissions import ledger
from guideapp.commissions import rules as maths
from guideapp.commissions.models import CommissionEntry, CommissionRecruit, CommissionRule
from guideapp.db import utcnow
from guideapp.members.models import Member, Order, OrderRefund
from guideapp.org.models import Staff, Store


def on_recruit(
    session: Session,
    *,
    member: Member,
    guide: Staff,
    source: str,
    campaign_id: str | None = None,
    at=None,
    **_ignored,
) -> CommissionRecruit | None:
    """Record the recruit once per member; pay the bounty once per person, then any tier."""
    if guide is None or guide.role != "guide" or guide.store_id is None:
        return None
    existing = session.scalar(
        select(CommissionRecruit).where(
            CommissionRecruit.tenant_id == member.tenant_id,
            CommissionRecruit.member_id == member.id,
        )
    )
    if existing is not None:
        return existing  # a replayed recruitment
    at = at or member.bound_at or utcnow()
    ev = ledger.event(session, member.tenant_id, at)
    person = ledger.resolve(session, member)
    state = "counted"
    if ledger.is_staff_phone(session, member.phone, person.phone):
        state = "staff"
    elif session.scalar(
        select(func.count(CommissionRecruit.id)).where(
            CommissionRecruit.tenant_id == member.tenant_id,
            CommissionRecruit.person_id == person.id,
            CommissionRecruit.state == "counted",
        )
    ):
        state = "duplicate"
    recruit = CommissionRecruit(
        tenant_id=member.tenant_id,
        member_id=member.id,
        person_id=person.id,
        guide_id=guide.id,
        store_id=guide.store_id,
        source=source,
        campaign_id=campaign_id,
        state=state,
        month=ev.month,
        recruited_at=at,
    )
    session.add(recruit)
    session.flush()
    if state != "counted":
        return recruit
    store = session.get(Store, guide.store_id)
    for rule in ledger.applicable_rules(
        session, ev=ev, kind="recruit_bounty", store=store, campaign_id=campaign_id
    ):
        ledger.earn(
            session,
            ev,
            rule=rule,
            guide=guide,
            kind="bounty",
            amount_fen=rule.amount_fen or 0,
            source_type="recruit",
            source_id=member.id,
            member_id=member.id,
        )
    pay_tiers(session, ev, guide=guide, store=store, campaign_id=campaign_id)
    return recruit


def pay_tiers(
    session: Session,
    ev: ledger.Event,
    *,
    guide: Staff,
    store: Store,
    campaign_id: str | None = None,
) -> None:
    """Each tier step pays once per guide per month, whichever rule version is in force."""
    count = session.scalar(
        select(func.count(CommissionRecruit.id)).where(
            CommissionRecruit.guide_id == guide.id,
            CommissionRecruit.month == ev.month,
            CommissionRecruit.state == "counted",
        )
    )
    for rule in ledger.applicable_rules(
        session, ev=ev, kind="tier_bonus", store=store, campaign_id=campaign_id
    ):
        for step in maths.tiers_reached(rule.tiers, count):
            source_id = f"{guide.id}:{ev.month}:{rule.rule_key}:{step['recruits']}"
            paid = session.scalar(
                select(func.count(CommissionEntry.id)).where(
                    CommissionEntry.tenant_id == ev.tenant_id,
                    CommissionEntry.source_type == "tier",
                    CommissionEntry.source_id == source_id,
                )
            )
            if not paid:
                ledger.earn(
                    session,
                    ev,
                    rule=rule,
                    guide=guide,
                    kind="tier",
                    amount_fen=int(step["bonus_fen"]),
                    source_type="tier",
                    source_id=source_id,
                    member_id=None,
                    basis_fen=count,
                )


def on_order(session: Session, *, order: Order, member: Member, **_ignored) -> None:
    """A bound member's order earns its guide (then) a percentage under each rule in force."""
    if order.guide_id is None:
        return
    guide = session.get(Staff, order.guide_id)
    if guide is None or guide.role != "guide" or guide.store_id is None:
        return
    person = ledger.resolve(session, member)
    if ledger.is_staff_phone(session, member.phone, person.phone):
        return
    ev = ledger.event(session, order.tenant_id, order.ordered_at)
    store = session.get(Store, guide.store_id)
    campaign_id = session.scalar(
        select(CommissionRecruit.campaign_id).where(
            CommissionRecruit.tenant_id == order.tenant_id,
            CommissionRecruit.person_id == person.id,
            CommissionRecruit.state == "counted",
        )
    )
    first = None
    for rule in ledger.applicable_rules(
        session, ev=ev, kind="order_percent", store=store, campaign_id=campaign_id
    ):
        if rule.order_basis == "first":
            first = ledger.is_first_order(session, order) if first is None else first
            if not first:
                continue
        elif not _within_binding(person, order):
            continue
        ledger.earn(
            session,
            ev,
            rule=rule,
            guide=guide,
            kind="order",
            amount_fen=maths.percent_of(order.amount_fen, rule.rate_bp or 0),
            source_type="order",
            source_id=order.id,
            member_id=person.id,
            basis_fen=order.amount_fen,
        )


def _within_binding(member: Member, order: Order) -> bool:
    """The order falls in the binding (lock) period of the member's current binding."""
    if member.bound_at is None or order.ordered_at < member.bound_at:
        return False
    return member.binding_locked_until is None or order.ordered_at < member.binding_locked_until


def on_refund(
    session: Session, *, order: Order, refund: OrderRefund, member: Member, **_ignored
) -> None:
    """Claw back each earning of the order in proportion to what is refunded by now.

    The clawback lands in the (open) month in which the refund is recorded, whatever date the
    refund carries: a late-reported refund reduces the month being paid, never a settled one."""
    earnings = session.scalars(
        select(CommissionEntry).where(
            CommissionEntry.tenant_id == order.tenant_id,
            CommissionEntry.source_type == "order",
            CommissionEntry.source_id == order.id,
            CommissionEntry.kind == "order",
        )
    ).all()
    if not earnings:
        return
    ev = ledger.event(
        session, order.tenant_id, refund.refunded_at, booked_at=refund.created_at or utcnow()
    )
    for entry in earnings:
        clawed, remaining = ledger.remaining_of(session, entry)
        due = maths.clawback_due(
            earned_fen=entry.amount_fen,
            order_fen=order.amount_fen,
            refunded_fen=order.refunded_fen,
            clawed_fen=clawed,
            remaining_fen=remaining,
        )
        if due:
            ledger.reverse(
                session,
                ev,
                entry,
                kind="clawback",
                source_type="refund",
                source_id=refund.id,
                amount_fen=due,
                basis_fen=refund.amount_fen,
            )


def on_merge(session: Session, *, survivor: Member, merged: Member) -> dict:
    """Attribution follows the survivor; a person's second bounty or first-order pay reverses."""
    moved = session.execute(
        update(CommissionRecruit)
        .where(
            CommissionRecruit.tenant_id == survivor.tenant_id,
            CommissionRecruit.person_id == merged.id,
        )
        .values(person_id=survivor.id)
    ).rowcount
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
