"""Rows built explicitly for tests: a second tenant, extra staff, logins."""
from __future__ import annotations

from sqlalchemy import select

from guideapp.auth.passwords import hash_password
from guideapp.demo import DEMO_PASSWORD
from guideapp.org.models import Brand, Region, Staff, Store
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
        tenant_id=tenant.id, brand_id=brand.id, region_id=region.id, code="SH001",
        name="Rival 上海人民广场店", city="上海", address="上海市黄浦区人民大道", lat=31.2317,
        lng=121.4726, opening_hours={},
    )
    session.add(store)
    session.flush()
    for phone, role, store_id in [
        ("13700000001", "hq_admin", None),
        ("13700000002", "store_manager", store.id),
        ("13700000003", "guide", store.id),
    ]:
        session.add(Staff(tenant_id=tenant.id, store_id=store_id, role=role, name=role,
                          phone=phone, password_hash=password_hash()))
    session.flush()
    return {"tenant": tenant, "store": store}


def staff_by_phone(session, phone: str) -> Staff:
    return session.scalar(select(Staff).where(Staff.phone == phone))


def store_by_code(session, code: str, tenant_slug: str = "stride") -> Store:
    from guideapp.org.models import Tenant

    return session.scalar(
        select(Store).join(Tenant, Tenant.id == Store.tenant_id)
        .where(Store.code == code, Tenant.slug == tenant_slug)
    )
