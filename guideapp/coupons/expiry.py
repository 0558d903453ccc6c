"""Expiry care: coupons past their end are marked expired by the scheduler tick, set-based,
and reach the phones that hold their member's card at the next sync."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, literal, select, union_all, update
from sqlalchemy.orm import Session

from guideapp.changelog import log_changes_from_select, scope_column
from guideapp.changelog.scopes import STAFF, STORE, tenant_scope
from guideapp.coupons.models import Coupon
from guideapp.db import rowcount
from guideapp.members.models import Member


def on_scheduler_tick(session: Session, *, tenant_id: str, now: datetime, **_) -> None:
    """tasks.scheduler_ticked: `available` coupons with valid_to <= now become expired."""
    expired = rowcount(
        session.execute(
            update(Coupon)
            .where(
                Coupon.tenant_id == tenant_id,
                Coupon.state == "available",
                Coupon.valid_to <= now,
            )
            .values(state="expired", state_reason="expired", updated_at=now)
            .execution_options(synchronize_session=False, preserve_rowcount=True)
        )
    )
    if expired:
        # The log is written at commit from this select: the rows this sweep stamped.
        swept = (
            Coupon.tenant_id == tenant_id,
            Coupon.state == "expired",
            Coupon.state_reason == "expired",
            Coupon.updated_at == now,
        )
        log_changes_from_select(
            session, tenant_id=tenant_id, table="coupons", rows=member_scope_rows(tenant_id, swept)
        )


def member_scope_rows(tenant_id: str, where):
    """(coupon id, scope) for the coupons matching `where`, in their member's scopes
    (members.identity.member_scopes in SQL: the guide's, the store's, else the tenant's)."""

    def rows(scope, *extra):
        return (
            select(Coupon.id, scope)
            .join(Member, Member.id == Coupon.member_id)
            .where(*where, *extra)
        )

    return union_all(
        rows(scope_column(STAFF, Member.guide_id), Member.guide_id.is_not(None)),
        rows(scope_column(STORE, Member.store_id), Member.store_id.is_not(None)),
        rows(
            literal(tenant_scope(tenant_id), String),
            Member.guide_id.is_(None),
            Member.store_id.is_(None),
        ),
    )
