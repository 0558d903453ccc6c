"""Risk alerts from WeCom (a guide deleted a customer): recorded by the event handlers,
read by the store's manager and HQ (GET /api/v1/wecom/alerts)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.pagination import paginate
from guideapp.wecom.models import WecomAlert


def list_alerts(session: Session, *, actor, cursor=None, limit=50, kind=None, store_id=None):
    """Newest first: HQ every store's, a manager their store's; guides are refused (403)."""
    policy.require(actor, "see_wecom_alerts")
    stmt = policy.scoped_select(actor, WecomAlert)
    if kind:
        stmt = stmt.where(WecomAlert.kind == kind)
    if store_id:
        stmt = stmt.where(WecomAlert.store_id == store_id)
    keys = [WecomAlert.happened_at, WecomAlert.id]
    return paginate(session, stmt, keys, cursor=cursor, limit=limit, descending=True)
