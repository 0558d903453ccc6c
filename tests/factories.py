"""Rows built explicitly for tests: a second tenant, extra staff, logins."""

from __future__ import annotations

from sqlalchemy import select

from guideapp.passwords import hash_password
from guideapp.demo import DEMO_PASSWORD
from guideapp.org.models import Brand, Region, Staff, Store
from guideapp.members.binding import bind
from guideapp.members.identity import create_member
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
