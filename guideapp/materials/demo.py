"""The demo tenant's material library: HQ posters and articles, a regional one, an expired one."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.policy.actor import Actor
from guideapp.db import utcnow
from guideapp.materials.service import create_category, create_material
from guideapp.org.models import Region, Staff

DEMO_MATERIALS = [
    ("poster", "冬季新品跑鞋海报", "https://cdn.example.cn/posters/winter-run.jpg", {"all": True}),
    ("article", "如何挑选第一双跑鞋", "https://mp.example.cn/articles/first-shoe", {"all": True}),
    ("product", "Stride Air 3 跑鞋", "https://mall.example.cn/p/air3", {"all": True}),
    ("poster", "华东门店周末快闪活动", "https://cdn.example.cn/posters/east-popup.jpg", "east"),
    ("mini_program", "会员积分商城", "https://mp.example.cn/points", {"all": True}),
]


def load_materials(session: Session, *, tenant_id: str) -> None:
    hq = session.scalar(
        select(Staff)
        .where(Staff.tenant_id == tenant_id, Staff.role == "hq_admin")
        .order_by(Staff.phone)
    )
    actor = Actor.for_staff(hq)
    shoes = create_category(session, actor=actor, name="鞋类", parent_id=None)
    create_category(session, actor=actor, name="跑鞋", parent_id=shoes.id)
    east = session.scalar(
        select(Region.id).where(Region.tenant_id == tenant_id, Region.code == "east")
    )
    for kind, title, url, target in DEMO_MATERIALS:
        create_material(
            session,
            actor=actor,
            data={
                "kind": kind,
                "title": title,
                "url": url,
                "category_id": shoes.id,
                "target": {"region_ids": [east]} if target == "east" else target,
                "tags": ["新品"] if "新品" in title else [],
            },
        )
    create_material(
        session,
        actor=actor,
        data={
            "kind": "text",
            "title": "双11预热文案(已过期)",
            "body": "双11来啦,全场满300减50!",
            "target": {"all": True},
            "valid_from": utcnow() - timedelta(days=30),
            "valid_to": utcnow() - timedelta(days=10),
        },
    )
