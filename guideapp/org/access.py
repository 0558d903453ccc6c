"""Who sees and changes the organisation: tenant, brands, regions, stores, staff."""

from sqlalchemy import true

from guideapp import policy
from guideapp.org.models import Brand, Region, Staff, Store, Tenant

STORE_PROFILE_FIELDS_FOR_MANAGERS = {
    "phone",
    "opening_hours",
    "wecom_contact_qr_url",
    "community_qr_url",
}


def _stores(actor):
    return true() if actor.is_hq else Store.id == actor.store_id


def _store_writes(actor, store, action):
    if actor.is_hq:
        return True
    # Managers keep their own store's contact details and hours current.
    return actor.is_manager and store.id == actor.store_id and action == "update_profile"


def _staff(actor):
    return true() if actor.is_hq else Staff.store_id == actor.store_id


def _staff_writes(actor, staff, action):
    if actor.is_hq:
        return True
    # Managers hire, edit and sign off the guides of their own store, nobody else.
    return (
        actor.is_manager
        and staff.store_id == actor.store_id
        and staff.role == "guide"
        and action in {"create", "update", "leave"}
    )


def register() -> None:
    for model in (Tenant, Brand, Region):
        policy.register_rules(model, read=policy.whole_tenant, write=policy.hq_writes)
    policy.register_rules(Store, read=_stores, write=_store_writes)
    policy.register_rules(Staff, read=_staff, write=_staff_writes)
