"""A code that carries a coupon gives one to each member WeChat identified scanning it, once:
a second scan of the same poster answers the coupon the first one gave."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.coupons import issuance
from guideapp.coupons.models import Coupon, CouponTemplate

log = logging.getLogger(__name__)


def on_scan_resolved(
    session: Session, *, code, member_id: str | None = None, store_id=None, **_
) -> dict:
    """scans.scan_resolved: issue the code's coupon to the identified member (anonymous
    scans get none). Nothing here calls the network; a refusal (stock, limit, staff, a
    paused template) leaves the scan as it is, without a coupon."""
    template_id = getattr(code, "coupon_template_id", None)
    if member_id is None or template_id is None:
        return {}
    key = f"scan:{code.id}:{member_id}"
    earlier = _issued(session, code.tenant_id, key)
    if earlier is not None:  # no template lock for a repeat scan
        return {"coupon": _present(session, earlier, new=False)}
    template = issuance.lock_template(session, tenant_id=code.tenant_id, template_id=template_id)
    if not template.active:
        return {}
    how = issuance.Issue(
        source="scan",
        key=lambda m: key,
        source_id=code.id,
        issued_by=code.guide_id if code.kind == "guide" else None,  # the guide's own poster
        store_id=store_id or code.store_id,
    )
    result = issuance.issue(session, template=template, member_ids=[member_id], how=how)
    if member_id not in result.coupons:
        earlier = _issued(session, code.tenant_id, key)  # a concurrent scan got it first
        if earlier is not None:
            return {"coupon": _present(session, earlier, new=False)}
        log.info(
            "scan coupon not issued",
            extra={"code_id": code.id, "template_id": template.id, "skipped": result.skipped},
        )
        return {}
    coupon = session.get_one(Coupon, result.coupons[member_id])
    return {"coupon": _present(session, coupon, new=True, template=template)}


def _issued(session: Session, tenant_id: str, key: str) -> Coupon | None:
    return session.scalar(
        select(Coupon).where(Coupon.tenant_id == tenant_id, Coupon.issue_key == key)
    )


def _present(session: Session, coupon: Coupon, *, new: bool, template=None) -> dict:
    template = template or session.get_one(CouponTemplate, coupon.template_id)
    return {
        "id": coupon.id,
        "name": template.name,
        "kind": template.kind,
        "valid_to": coupon.valid_to,
        "new": new,
    }
