"""The demo tenant's members, tags, orders and points (set-based inserts)."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.orm import Session

from guideapp.db import new_id
from guideapp.members.models import (
    Binding,
    Member,
    MemberTag,
    Order,
    PointsEntry,
    QuestionnaireCode,
    Tag,
    TagGroup,
)
from guideapp.changelog import log_changes, staff_scope, store_scope, tenant_scope

TAG_GROUPS: dict[str, list[tuple[str, str | None]]] = {
    "运动偏好": [("跑步", None), ("篮球", None), ("瑜伽", None), ("户外", None)],
    "尺码": [("S", None), ("M", None), ("L", None), ("XL", None)],
    "运动频率": [("每周3次以上", "3"), ("每周1-2次", "2"), ("偶尔", "1")],
}
PRODUCTS = [
    ("跑鞋 Stride Air", 69900),
    ("速干T恤", 12900),
    ("篮球鞋 Court 2", 89900),
    ("瑜伽裤", 29900),
    ("冲锋衣", 99900),
    ("运动袜 3双装", 4900),
]
CHANNELS = ["pos", "tmall", "jd", "douyin", "brand_mall"]


def load_members(session: Session, fixtures: Path, *, tenant_id: str, staff: list[dict]) -> int:
    raw = json.loads((fixtures / "members.json").read_text(encoding="utf-8"))
    guides = {s["phone"]: s for s in staff}
    rng = random.Random(2026)
    tag_ids = _load_tags(session, tenant_id)
    members, bindings, member_tags, orders, points = [], [], [], [], []
    for m in raw:
        guide = guides[m["guide_phone"]]
        joined = datetime.fromisoformat(m["joined_at"].replace("Z", "+00:00"))
        birthday = date.fromisoformat(m["birthday"]) if m["birthday"] else None
        member_id = new_id()
        member_orders = _orders(rng, tenant_id, member_id, guide, joined)
        paid = len(member_orders)
        members.append(
            {
                "id": member_id,
                "tenant_id": tenant_id,
                "phone": m["phone"],
                "phone_tail": m["phone"][-4:],
                "unionid": m["unionid"],
                "name": m["name"],
                "gender": m["gender"],
                "birthday": birthday,
                "birthday_mmdd": birthday.strftime("%m%d") if birthday else None,
                "tier": m["tier"],
                "source_channel": m["source_channel"],
                "joined_at": joined,
                "stage": "regular" if paid >= 3 else "customer" if paid else "fan",
                "guide_id": guide["id"],
                "store_id": guide["store_id"],
                "bound_at": joined,
                "binding_locked_until": joined + timedelta(days=90),
                "state": "active",
                "last_order_at": max((o["ordered_at"] for o in member_orders), default=None),
                "first_order_at": min((o["ordered_at"] for o in member_orders), default=None),
            }
        )
        bindings.append(
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "member_id": member_id,
                "guide_id": guide["id"],
                "store_id": guide["store_id"],
                "reason": "import",
                "started_at": joined,
                "locked_until": joined + timedelta(days=90),
            }
        )
        for tag_id in rng.sample(tag_ids, rng.randint(0, 3)):
            member_tags.append(
                {
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "member_id": member_id,
                    "tag_id": tag_id,
                    "source": "import",
                }
            )
        orders += member_orders
        if m["points"]:
            points.append(
                {
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "member_id": member_id,
                    "kind": "adjust",
                    "points": m["points"],
                    "reason": "opening balance",
                    "created_at": joined,
                }
            )
    for model, rows in (
        (Member, members),
        (Binding, bindings),
        (MemberTag, member_tags),
        (Order, orders),
        (PointsEntry, points),
    ):
        if rows:
            session.execute(insert(model), rows)
    log_changes(
        session,
        tenant_id=tenant_id,
        table="members",
        rows=[
            (r["id"], scope)
            for r in members
            for scope in (staff_scope(r["guide_id"]), store_scope(r["store_id"]))
        ],
    )
    return len(members)


def _orders(rng, tenant_id, member_id, guide, joined) -> list[dict]:
    rows = []
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3, 5])):
        product, price = rng.choice(PRODUCTS)
        ordered = joined + timedelta(days=rng.randint(0, 300), minutes=rng.randint(0, 1440))
        ordered = min(ordered, datetime(2026, 11, 20, tzinfo=timezone.utc))
        rows.append(
            {
                "id": new_id(),
                "tenant_id": tenant_id,
                "member_id": member_id,
                "channel": rng.choice(CHANNELS),
                "order_no": f"D{rng.randrange(10**12)}",
                "store_id": guide["store_id"],
                "guide_id": guide["id"],
                "amount_fen": price,
                "refunded_fen": 0,
                "items": [{"name": product, "qty": 1, "price_fen": price}],
                "ordered_at": ordered,
            }
        )
    return rows


def _load_tags(session: Session, tenant_id: str) -> list[str]:
    tag_ids = []
    for group_name, tags in TAG_GROUPS.items():
        group = TagGroup(id=new_id(), tenant_id=tenant_id, name=group_name)
        session.add(group)
        session.flush()
        log_changes(
            session,
            tenant_id=tenant_id,
            table="tag_groups",
            rows=[(group.id, tenant_scope(tenant_id))],
        )
        for name, code in tags:
            tag = Tag(id=new_id(), tenant_id=tenant_id, group_id=group.id, name=name, code=code)
            session.add(tag)
            session.flush()
            tag_ids.append(tag.id)
            log_changes(
                session, tenant_id=tenant_id, table="tags", rows=[(tag.id, tenant_scope(tenant_id))]
            )
            if code:
                session.add(
                    QuestionnaireCode(
                        tenant_id=tenant_id,
                        questionnaire="入会问卷",
                        question="运动频率",
                        answer=code,
                        tag_id=tag.id,
                    )
                )
    session.flush()
    return tag_ids
