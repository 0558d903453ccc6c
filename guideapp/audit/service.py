"""Recording and listing audit entries (services call `record`; they never commit)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.audit.models import ACTIONS, AuditEntry
from guideapp.db import utcnow
from guideapp.pagination import paginate
from guideapp.policy.actor import Actor


def record(
    session: Session,
    *,
    tenant_id: str,
    staff_id: str | None,
    action: str,
    target_kind: str | None = None,
    target_id: str | None = None,
    details: dict | None = None,
    at: datetime | None = None,
) -> None:
    """Note a sensitive act, in the caller's transaction: it is kept exactly when the act is."""
    assert action in ACTIONS, action
    session.add(
        AuditEntry(
            tenant_id=tenant_id,
            staff_id=staff_id,
            action=action,
            target_kind=target_kind,
            target_id=target_id,
            details=details or {},
            at=at or utcnow(),
        )
    )


def list_entries(
    session: Session,
    *,
    actor: Actor,
    limit: int,
    cursor: str | None,
    action: str | None = None,
    staff_id: str | None = None,
):
    """Newest first; HQ only (everyone else gets an empty list: the read rule)."""
    stmt = policy.scoped_select(actor, AuditEntry)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if staff_id:
        stmt = stmt.where(AuditEntry.staff_id == staff_id)
    return paginate(
        session, stmt, [AuditEntry.at, AuditEntry.id], limit=limit, cursor=cursor, descending=True
    )
