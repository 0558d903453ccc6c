"""Rows built explicitly for tests: a second tenant, extra staff, logins."""

from __future__ import annotations

from sqlalchemy import select

from guideapp.passwords import hash_password
from guideapp.demo import DEMO_PASSWORD
from guideapp.org.models import Brand, Region, Staff, Store
from guideapp.members.binding import bind
from guideapp.members.identity import create_member, log_member
from guideapp.members.models import Member, Tag, TagGroup
from guideapp.org.service import create_tenant

_PASSWORD_HASH = None


def password_hash() -> str:
    global _PASSWORD_HASH
    if _PASSWORD_HASH is None:
        _PASSWORD_HASH = hash_password(DEMO_PASSWORD)
    return _PASSWORD_HASH


def make_rival_tenant(session) -> dict:
    """A second brand group with one store and its HQ, manager and guide (phones 1370000000x)."""
    tenant = create_tenant(session, slug="rival", name="Rival Coffee", timezone="Asia/Shanghai")
    brand = Brand(tenant_id=tenant.id, code="rival", name="Rival 咖啡")
    session.add(brand)
    session.flush()
    region = Region(tenant_id=tenant.id, brand_id=brand.id, code="east", name="华东")
    session.add(region)
    session.flush()
    store = Store(
        tenant_id=tenant.id,
        brand_id=brand.id,
        region_id=region.id,
        code="SH001",
        name="Rival 上海人民广场店",
        city="上海",
        address="上海市黄浦区人民大道",
        lat=31.2317,
        lng=121.4726,
        opening_hours={},
    )
    session.add(store)
    session.flush()
    staff = {}
    for phone, role, store_id in [
        ("13700000001", "hq_admin", None),
        ("13700000002", "store_manager", store.id),
        ("13700000003", "guide", store.id),
    ]:
        staff[role] = Staff(
            tenant_id=tenant.id,
            store_id=store_id,
            role=role,
            name=role,
            phone=phone,
            password_hash=password_hash(),
        )
        session.add(staff[role])
    session.flush()
    member = create_member(
        session, tenant_id=tenant.id, phone="13612340000", name="对手会员", source_channel="pos"
    )
    bind(session, member=member, guide=staff["guide"], reason="recruited")
    group = TagGroup(tenant_id=tenant.id, name="口味")
    session.add(group)
    session.flush()
    session.add(Tag(tenant_id=tenant.id, group_id=group.id, name="拿铁"))
    session.flush()
    return {"tenant": tenant, "store": store, "member": member, "tag_group": group}


POOL_STORES = {"stride": ("SH001", "SH002", "BJ001"), "rival": ("SH001",)}


def make_pool_members(session) -> list[Member]:
    """Unassigned (pool) members, guide_id NULL, two in each of several stores of both
    tenants: the demo guide's own store (SH001) and stores the guide must not reach."""
    from datetime import datetime, timezone

    joined = datetime(2025, 6, 1, 2, 0, tzinfo=timezone.utc)
    made = []
    for number, (slug, code) in enumerate(
        (slug, code) for slug, codes in POOL_STORES.items() for code in codes for _ in range(2)
    ):
        store = store_by_code(session, code, slug)
        member = create_member(
            session,
            tenant_id=store.tenant_id,
            phone=f"166000000{number:02d}",
            name=f"待分配{code}",
            source_channel="pos",
            joined_at=joined,
        )
        member.store_id = store.id
        session.flush()
        log_member(session, member)  # now in its store's scope: the store's phones pull it
        made.append(member)
    return made


def pool_members(session, code: str, tenant_slug: str = "stride") -> list[Member]:
    store = store_by_code(session, code, tenant_slug)
    return session.scalars(
        select(Member)
        .where(Member.store_id == store.id, Member.guide_id.is_(None))
        .order_by(Member.id)
    ).all()


def staff_by_phone(session, phone: str) -> Staff:
    return session.scalar(select(Staff).where(Staff.phone == phone))


def store_by_code(session, code: str, tenant_slug: str = "stride") -> Store:
    from guideapp.org.models import Tenant

    return session.scalar(
        select(Store)
        .join(Tenant, Tenant.id == Store.tenant_id)
        .where(Store.code == code, Tenant.slug == tenant_slug)
    )


def member_of(session, guide_phone: str) -> Member:
    guide = staff_by_phone(session, guide_phone)
    return session.scalar(select(Member).where(Member.guide_id == guide.id).order_by(Member.id))


def tag_group_of(session, tenant_slug: str) -> TagGroup:
    from guideapp.org.models import Tenant

    return session.scalar(
        select(TagGroup)
        .join(Tenant, Tenant.id == TagGroup.tenant_id)
        .where(Tenant.slug == tenant_slug)
        .order_by(TagGroup.id)
    )


def make_task(session, store, *, assignee=None, title="测试任务"):
    from datetime import timedelta

    from guideapp.db import new_id, utcnow
    from guideapp.tasks.models import Task

    task = Task(
        tenant_id=store.tenant_id,
        store_id=store.id,
        assignee_id=assignee,
        source="store",
        dedupe_key=f"test:{new_id()}",
        title=title,
        starts_at=utcnow() - timedelta(hours=1),
        due_at=utcnow() + timedelta(days=1),
    )
    session.add(task)
    session.flush()
    return task


def make_plans(session, hq):
    """A draft campaign and an SOP rule owned by `hq`'s tenant."""
    from datetime import timedelta

    from guideapp.db import utcnow
    from guideapp.tasks.models import Campaign, SopRule

    campaign = Campaign(
        tenant_id=hq.tenant_id,
        title="c",
        starts_at=utcnow(),
        due_at=utcnow() + timedelta(days=1),
        target={"all": True},
        created_by=hq.id,
    )
    rule = SopRule(
        tenant_id=hq.tenant_id,
        name="r",
        trigger="member_joined",
        steps=[{"days": 3, "title": "t"}],
        created_by=hq.id,
    )
    session.add_all([campaign, rule])
    session.flush()
    return campaign, rule
