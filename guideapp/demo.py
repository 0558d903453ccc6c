"""Load the demo tenant from fixtures/demo (set-based inserts; safe to run twice)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from guideapp.passwords import hash_password
from guideapp.commissions.demo import load_commission_rules
from guideapp.db import new_id
from guideapp.materials.demo import load_materials
from guideapp.members.demo import load_members
from guideapp.replies.demo import load_replies
from guideapp.org.models import Brand, Region, Staff, Store, StoreTag, Tenant
from guideapp.org.service import create_tenant
from guideapp.scans.demo import load_codes
from guideapp.changelog import log_changes, store_scope, tenant_scope

DEMO_PASSWORD = "demo-pass-2026"
DEMO_LOGINS = [
    ("13800000001", "HQ admin"),
    ("13800000002", "store manager of SH001 (Shanghai)"),
    ("13800000003", "guide at SH001 (Shanghai)"),
    ("13800000004", "guide at BJ001 (Beijing)"),
]


def load_demo(session: Session, fixtures: Path) -> Tenant | None:
    """Create the demo tenant unless it exists; returns it, or None when already there."""
    org = json.loads((fixtures / "org.json").read_text(encoding="utf-8"))
    if session.scalar(select(Tenant).where(Tenant.slug == org["tenant"]["slug"])):
        return None
    tenant = create_tenant(session, **org["tenant"])
    brands = {b["code"]: Brand(id=new_id(), tenant_id=tenant.id, **b) for b in org["brands"]}
    regions = {
        r["code"]: Region(
            id=new_id(),
            tenant_id=tenant.id,
            brand_id=brands[r["brand"]].id,
            code=r["code"],
            name=r["name"],
        )
        for r in org["regions"]
    }
    session.add_all([*brands.values(), *regions.values()])
    session.flush()

    store_rows, tag_rows = [], []
    for raw in org["stores"]:
        raw = dict(raw)
        region = regions[raw.pop("region")]
        tags = raw.pop("tags")
        raw.pop("coord_system")  # the fixture is in GCJ-02 already
        row = {
            "id": new_id(),
            "tenant_id": tenant.id,
            "region_id": region.id,
            "brand_id": region.brand_id,
            **raw,
        }
        store_rows.append(row)
        tag_rows += [{"store_id": row["id"], "tag": t, "tenant_id": tenant.id} for t in tags]
    session.execute(insert(Store), store_rows)
    session.execute(insert(StoreTag), tag_rows)
    store_ids = {row["code"]: row["id"] for row in store_rows}

    password_hash = hash_password(DEMO_PASSWORD)  # one hash for all: Argon2 is slow on purpose
    staff = json.loads((fixtures / "staff.json").read_text(encoding="utf-8"))
    staff_rows = [
        {
            "id": new_id(),
            "tenant_id": tenant.id,
            "store_id": store_ids.get(s["store"]),
            "role": s["role"],
            "name": s["name"],
            "phone": s["phone"],
            "password_hash": password_hash,
            "state": "active",
        }
        for s in staff
    ]
    session.execute(insert(Staff), staff_rows)

    load_members(
        session,
        fixtures,
        tenant_id=tenant.id,
        staff=[r for r in staff_rows if r["role"] == "guide"],
    )
    log_changes(
        session,
        tenant_id=tenant.id,
        table="stores",
        rows=[(r["id"], store_scope(r["id"])) for r in store_rows],
    )
    log_changes(
        session,
        tenant_id=tenant.id,
        table="staff",
        rows=[
            (r["id"], store_scope(r["store_id"]) if r["store_id"] else tenant_scope(tenant.id))
            for r in staff_rows
        ],
    )
    load_materials(session, tenant_id=tenant.id)
    load_codes(session, fixtures, tenant_id=tenant.id)
    load_replies(session, tenant_id=tenant.id)
    load_commission_rules(session, tenant_id=tenant.id)
    return tenant
