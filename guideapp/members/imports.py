"""Bulk import of members and orders from CSV / Excel, with a row-by-row error report."""
from __future__ import annotations

from guideapp.auth.scope import Actor
from guideapp.errors import Forbidden

IMPORT_KINDS = ("members", "orders")


def require_hq(actor: Actor) -> None:
    if not actor.is_hq:
        raise Forbidden("Only HQ feeds orders and imports into the system.")


def run_import(session, *, tenant_id: str, kind: str, filename: str, content: bytes,
               dry_run: bool, by_staff_id: str | None = None) -> dict:
    """Parse `content` (CSV or .xlsx by file name), validate each row, apply the good ones.

    Returns {"kind", "dry_run", "rows", "imported", "updated", "failed", "errors": [
    {"row": 3, "field": "phone", "message": "..."}]}.
    """
    raise NotImplementedError
