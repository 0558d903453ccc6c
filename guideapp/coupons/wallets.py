"""Coupons on phones: they follow their member's card (rebinding, transfer, merge), leave
when they expire, and are sent again when their template's text changes. All set-based:
one INSERT ... SELECT into the change log per scope, never a row per coupon in Python.

A guide's phone holds the available coupons of the members bound to them, a manager's
those of the store's members (sync/tables.py); a coupon is logged in its member's scopes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, String, literal, select, union_all, update
from sqlalchemy.orm import Session

from guideapp.changelog import log_changes_from_select, scope_column
from guideapp.changelog.scopes import STAFF, STORE
from guideapp.coupons.models import Coupon, CouponTemplate
from guideapp.members.models import Member


def _log_where_held(session: Session, tenant_id: str, *where: ColumnElement[bool]) -> None:
    """Log the coupons matching `where` in their members' scopes (as the stamp sees them)."""
    held = [
        select(Coupon.id, scope_column(prefix, owner))
        .join(Member, Member.id == Coupon.member_id)
        .where(Coupon.tenant_id == tenant_id, owner.is_not(None), *where)
        for prefix, owner in ((STAFF, Member.guide_id), (STORE, Member.store_id))
    ]
    log_changes_from_select(session, tenant_id=tenant_id, table="coupons", rows=union_all(*held))


def follow_cards(session: Session, *, tenant_id: str, member_ids, scopes, **_) -> None:
    """members.member_cards_moved: the members' usable coupons are logged in the cards' old
    and new scopes, so the new guide's phone gets them and the old one drops them (used
    and expired ones left the phones when they changed state)."""
    for scope in scopes:
        log_changes_from_select(
            session,
            tenant_id=tenant_id,
            table="coupons",
            rows=select(Coupon.id, literal(scope, String)).where(
                Coupon.tenant_id == tenant_id,
                Coupon.member_id.in_(member_ids),
                Coupon.state == "available",
            ),
        )


def merge_wallets(session: Session, *, survivor, merged, **_) -> dict:
    """members.members_merged: the merged member's coupons are the survivor's (nothing is
    lost; the per-member limit counts from now on). The merge logs the survivor's card in
    both members' scopes (member_cards_moved), which logs these coupons too."""
    result = session.execute(
        update(Coupon)
        .where(Coupon.tenant_id == survivor.tenant_id, Coupon.member_id == merged.id)
        .values(member_id=survivor.id)
        .execution_options(synchronize_session=False)
    )
    return {"coupons": cast(CursorResult[Any], result).rowcount}


def expire_due(session: Session, *, tenant_id: str, since: datetime | None, now, **_) -> None:
    """tasks.scheduler_ticked: coupons past their end are marked expired, and those whose
    end fell since the last tick are logged, so they leave the phones at the next pull."""
    session.execute(
        update(Coupon)
        .where(Coupon.tenant_id == tenant_id, Coupon.state == "available", Coupon.valid_to <= now)
        .values(state="expired", state_reason="expired", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    # Ticks cover time without gaps (since = the last tick's start): every coupon a phone
    # got while valid ends in one tick's window.
    window = [Coupon.state == "expired", Coupon.valid_to <= now]
    if since is not None:
        window.append(Coupon.valid_to > since)
    _log_where_held(session, tenant_id, *window)


def log_template_coupons(session: Session, template: CouponTemplate) -> None:
    """A template's name or text changed: phones get its usable coupons again."""
    _log_where_held(
        session, template.tenant_id, Coupon.template_id == template.id, Coupon.state == "available"
    )
