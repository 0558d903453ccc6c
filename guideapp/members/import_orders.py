"""Orders import, set-based: replays skipped, buyers become members, stages refreshed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from guideapp.db import new_id
from guideapp.members.import_members import (
    existing_members,
    insert_rows,
    new_member,
    one_of,
    scopes,
)
from guideapp.members.lifecycle import stage_for
from guideapp.members.models import Member, Order, OrderRefund
from guideapp.changelog import log_changes, tenant_scope
from guideapp.members.signals import orders_recorded, refunds_recorded


@dataclass
class Plan:
    creates: list = field(default_factory=list)  # buyers who become members
    created: set = field(default_factory=set)  # their ids
    fills: dict = field(default_factory=dict)  # member id -> member learning from the order
    homed: set = field(default_factory=set)  # existing members who get the order's store
    orders: list = field(default_factory=list)
    refunded: list = field(default_factory=list)  # (recorded order, new refunded total)


def apply(session: Session, run, batch: list[dict]) -> None:
    recorded = _recorded(session, run, batch)
    plan, fresh = Plan(), []
    for record in batch:
        old = recorded.get((record["channel"], record["order_no"]))
        if old is None:
            fresh.append(record)
        elif old["amount_fen"] != record["amount_fen"]:
            run.error(
                record["row"],
                "amount" if "amount" in run.columns else "amount_fen",
                f"Order {record['order_no']} was recorded before with "
                f"{_yuan(old['amount_fen'])} yuan; check the amount or the order number.",
            )
        elif record["refund_amount"] > old["refunded_fen"]:
            plan.refunded.append((old, record["refund_amount"]))
        elif record["refund_amount"] < old["refunded_fen"]:
            run.same(
                record["row"],
                [
                    (
                        "refund_amount",
                        f"Order {record['order_no']} has {_yuan(old['refunded_fen'])} yuan "
                        f"refunded already, more than this row's {_yuan(record['refund_amount'])}"
                        "; refunds only add up, so the order stays as it is.",
                    )
                ],
            )
        else:
            run.same(
                record["row"],
                [(None, f"Order {record['order_no']} was recorded before exactly so.")],
            )
    _plan_orders(session, run, fresh, plan)
    run.imported += len(plan.orders)
    run.updated += len(plan.refunded)
    if not run.dry_run:
        _write(session, run, plan)


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _recorded(session: Session, run, batch: list[dict]) -> dict:
    """Orders already there, by (channel, order_no): the unique key, queried per channel."""
    numbers = defaultdict(set)
    for record in batch:
        numbers[record["channel"]].add(record["order_no"])
    found = {}
    for channel, chunk in numbers.items():
        stmt = select(
            Order.id,
            Order.channel,
            Order.order_no,
            Order.amount_fen,
            Order.refunded_fen,
            Order.member_id,
        ).where(
            Order.tenant_id == run.tenant_id,
            Order.channel == channel,
            one_of(session, Order.order_no, chunk),
        )
        if not run.dry_run:
            stmt = stmt.with_for_update()
        found.update({(r.channel, r.order_no): r._asdict() for r in session.execute(stmt)})
    return found


def _plan_orders(session: Session, run, fresh: list[dict], plan: Plan) -> None:
    by_phone = existing_members(session, run, Member.phone, (r.get("phone") for r in fresh))
    by_unionid = existing_members(session, run, Member.unionid, (r.get("unionid") for r in fresh))
    for record in fresh:
        member = _buyer(run, record, by_phone, by_unionid, plan)
        plan.orders.append(
            {
                "id": new_id(),
                "tenant_id": run.tenant_id,
                "member_id": member["id"],
                "channel": record["channel"],
                "order_no": record["order_no"],
                "store_id": record.get("store_code") or member["store_id"],
                "guide_id": member["guide_id"],  # the guide bound then, as ingest_order does
                "amount_fen": record["amount_fen"],
                "refunded_fen": record["refund_amount"],
                "items": [],
                "ordered_at": record["ordered_at"],
                "created_at": run.now,
            }
        )


def _buyer(run, record: dict, by_phone: dict, by_unionid: dict, plan: Plan) -> dict:
    """Payment is membership: the member by phone (which wins) or unionid, else a new one."""
    phone, unionid = record.get("phone"), record.get("unionid")
    member = (
        by_phone.get(phone)
        or run.new_members.get(("phone", phone))
        or by_unionid.get(unionid)
        or run.new_members.get(("unionid", unionid))
    )
    if member is None:
        member = new_member(
            run,
            phone=phone,
            unionid=unionid,
            name=record.get("name"),
            source_channel=record["channel"],
            joined_at=record["ordered_at"],
            stage="fan" if unionid else "prospect",
            store_id=record.get("store_code"),  # orders.learn_from_order: the store's pool
        )
        plan.creates.append(member)
        plan.created.add(member["id"])
        for kind, value in (("phone", phone), ("unionid", unionid)):
            if value:
                run.new_members[kind, value] = member
        return member
    if member["id"] in plan.created and record["ordered_at"] < member["joined_at"]:
        member["joined_at"] = record["ordered_at"]  # a buyer joined with their first order
    _learn(run, record, member, by_phone, by_unionid, plan)
    return member


def _learn(run, record: dict, member: dict, by_phone: dict, by_unionid: dict, plan: Plan) -> None:
    """identity._fill_missing_identity: take a phone or unionid nobody else has; and as
    orders.learn_from_order, a name when the member has none and the order's store when the
    member has no guide and no store."""
    learned = False
    if record.get("name") and not (member["name"] or "").strip():
        member["name"], learned = record["name"], True
    if record.get("store_code") and not member["store_id"] and not member["guide_id"]:
        member["store_id"], learned = record["store_code"], True
        if member["id"] not in plan.created:
            plan.homed.add(member["id"])
    for kind, taken in (("phone", by_phone), ("unionid", by_unionid)):
        value = record.get(kind)
        if (
            value
            and not member[kind]
            and value not in taken
            and (kind, value) not in run.new_members
        ):
            member[kind] = value
            run.new_members[kind, value] = member
            learned = True
    if member["phone"]:
        member["phone_tail"] = member["phone"][-4:]
    if learned and member["id"] not in plan.created:
        plan.fills[member["id"]] = member


def _write(session: Session, run, plan: Plan) -> None:
    insert_rows(session, Member, plan.creates)
    if plan.fills:
        session.execute(
            update(Member),
            [
                {
                    "id": m["id"],
                    "tenant_id": run.tenant_id,  # the table's key holds it (guideapp/db.py)
                    "phone": m["phone"],
                    "phone_tail": m["phone_tail"],
                    "unionid": m["unionid"],
                    "name": m["name"],
                    "store_id": m["store_id"],
                    "updated_at": run.now,
                }
                for m in plan.fills.values()
            ],
        )
    insert_rows(session, Order, plan.orders)
    if plan.refunded:
        session.execute(
            update(Order),
            [
                {"id": old["id"], "tenant_id": run.tenant_id, "refunded_fen": total}
                for old, total in plan.refunded
            ],
        )
    refunds = [
        (o["id"], o["refunded_fen"], o["refunded_fen"]) for o in plan.orders if o["refunded_fen"]
    ]
    refunds += [(old["id"], total - old["refunded_fen"], total) for old, total in plan.refunded]
    # refunds are events; a later export with a larger refund adds the difference
    refund_rows = [
        {
            "id": new_id(),
            "tenant_id": run.tenant_id,
            "order_id": order_id,
            "refund_no": f"import-{total}",
            "amount_fen": amount,
            "refunded_at": run.now,
            "created_at": run.now,
        }
        for order_id, amount, total in refunds
    ]
    insert_rows(session, OrderRefund, refund_rows)
    touched = [(o["id"], o["member_id"]) for o in plan.orders]
    touched += [(old["id"], old["member_id"]) for old, _ in plan.refunded]
    member_scopes = _refresh_members(session, run, {m for _, m in touched})
    for member_id in plan.homed:  # logged where they were too: they moved
        member_scopes[member_id] = member_scopes[member_id] | {tenant_scope(run.tenant_id)}
    log_changes(
        session,
        tenant_id=run.tenant_id,
        table="members",
        rows=[(m, s) for m, found in member_scopes.items() for s in found],
    )
    log_changes(
        session,
        tenant_id=run.tenant_id,
        table="orders",
        rows=[(o, s) for o, m in touched for s in member_scopes[m]],
    )
    # the same announcements as POST /orders and POST /orders/refunds (commissions listen),
    # one per batch: receivers work set-based
    if plan.orders:
        orders_recorded.send(
            session, tenant_id=run.tenant_id, order_ids=[o["id"] for o in plan.orders]
        )
    if refund_rows:
        refunds_recorded.send(
            session, tenant_id=run.tenant_id, refund_ids=[r["id"] for r in refund_rows]
        )


def _refresh_members(session: Session, run, member_ids: set[str]) -> dict[str, set[str]]:
    """last_order_at and lifecycle stage for the buyers, from one GROUP BY, not per row."""
    if not member_ids:
        return {}
    paid = Order.refunded_fen < Order.amount_fen
    since = run.now - timedelta(days=run.rules["regular_window_days"])
    stmt = (
        select(
            Member.id,
            Member.stage,
            Member.unionid,
            Member.guide_id,
            Member.store_id,
            func.max(Order.ordered_at),
            func.sum(case((paid, 1), else_=0)),
            func.sum(case((paid & (Order.ordered_at >= since), 1), else_=0)),
        )
        .join(Order, Order.member_id == Member.id)
        .where(one_of(session, Member.id, member_ids))
        .group_by(Member.id, Member.stage, Member.unionid, Member.guide_id, Member.store_id)
    )
    updates, found = [], {}
    for mid, stage, unionid, guide_id, store_id, last, total, recent in session.execute(stmt):
        updates.append(
            {
                "id": mid,
                "tenant_id": run.tenant_id,  # the table's key holds it (guideapp/db.py)
                "last_order_at": last,
                "updated_at": run.now,
                "stage": stage_for(
                    orders_total=int(total or 0),
                    orders_in_window=int(recent or 0),
                    has_wechat=bool(unionid or guide_id),
                    current=stage,
                    rules=run.rules,
                ),
            }
        )
        found[mid] = scopes(run.tenant_id, {"guide_id": guide_id, "store_id": store_id})
    session.execute(update(Member), updates)
    return found
