"""The demo tenant's channel codes, with the exact code strings of fixtures/demo/codes.json."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.members.models import Tag, TagGroup
from guideapp.org.models import Staff, Store
from guideapp.scans.models import ScanCode


def load_codes(session: Session, fixtures: Path, *, tenant_id: str) -> int:
    """Create the listed codes (HQ's first admin as author); skip a file that is absent."""
    path = fixtures / "codes.json"
    if not path.exists():
        return 0
    stores = dict(
        session.execute(select(Store.code, Store.id).where(Store.tenant_id == tenant_id)).all()
    )
    staff = {s.phone: s for s in session.scalars(select(Staff).where(Staff.tenant_id == tenant_id))}
    author = min((s for s in staff.values() if s.role == "hq_admin"), key=lambda s: s.phone)
    tags = {
        (group, name): tag_id
        for group, name, tag_id in session.execute(
            select(TagGroup.name, Tag.name, Tag.id)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .where(Tag.tenant_id == tenant_id)
        )
    }
    rows = []
    for raw in json.loads(path.read_text(encoding="utf-8")):
        guide = staff.get(raw.get("guide_phone"))
        rows.append(
            ScanCode(
                tenant_id=tenant_id,
                code=raw["code"],
                kind=raw["kind"],
                channel=raw["channel"],
                name=raw.get("name", ""),
                created_by=author.id,
                guide_id=guide.id if guide else None,
                store_id=guide.store_id if guide else stores.get(raw.get("store")),
                tag_ids=[tags[tuple(t)] for t in raw.get("tags", [])],
                fallback_store_id=stores.get(raw.get("fallback_store")),
                fallback_url=raw.get("fallback_url"),
            )
        )
    session.add_all(rows)
    session.flush()
    return len(rows)
