"""Who reads the sync rejections (the pushed records the server refused or overrode)."""

from sqlalchemy import select, true

from guideapp import policy
from guideapp.org.models import Staff
from guideapp.sync.models import SyncRejection


def _sync_rejections(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return SyncRejection.staff_id.in_(select(Staff.id).where(Staff.store_id == actor.store_id))
    return SyncRejection.staff_id == actor.staff_id


def register() -> None:
    policy.register_rules(SyncRejection, read=_sync_rejections)
