"""Which stores a campaign or calendar item reaches (the members a segment names:
guideapp/members/segments.py)."""

from __future__ import annotations

from sqlalchemy import Select, false, or_, select

from guideapp.org.models import Store, StoreTag


def target_stores(tenant_id: str, target: dict) -> Select:
    """Open stores of the tenant matched by {"all"} or any of region_ids / store_tags / ids."""
    stmt = select(Store.id).where(Store.tenant_id == tenant_id, Store.state == "open")
    if target.get("all"):
        return stmt
    clauses = []
    if target.get("region_ids"):
        clauses.append(Store.region_id.in_(target["region_ids"]))
    if target.get("store_tags"):
        clauses.append(
            Store.id.in_(
                select(StoreTag.store_id).where(
                    StoreTag.tenant_id == tenant_id, StoreTag.tag.in_(target["store_tags"])
                )
            )
        )
    if target.get("store_ids"):
        clauses.append(Store.id.in_(target["store_ids"]))
    return stmt.where(or_(*clauses) if clauses else false())
