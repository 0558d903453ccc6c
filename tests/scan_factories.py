"""Channel codes built explicitly for tests (scans and scoping)."""

from __future__ import annotations

from guideapp.db import new_id
from guideapp.scans.models import ScanCode
from tests.factories import staff_by_phone


def make_code(
    session,
    *,
    author_phone: str,
    kind: str = "lbs",
    store=None,
    guide_phone=None,
    channel: str = "poster",
    **extra,
) -> ScanCode:
    author = staff_by_phone(session, author_phone)
    guide = staff_by_phone(session, guide_phone) if guide_phone else None
    code = ScanCode(
        tenant_id=author.tenant_id,
        code=new_id()[:10],
        kind=kind,
        channel=channel,
        created_by=author.id,
        guide_id=guide.id if guide else None,
        store_id=guide.store_id if guide else (store.id if store else None),
        tag_ids=[],
        **extra,
    )
    session.add(code)
    session.flush()
    return code
