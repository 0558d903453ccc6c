"""The access rules of every model, one block per domain. Read with policy.py."""
from sqlalchemy import true

from guideapp.auth.policy import read_rule, write_rule
from guideapp.org.models import Brand, Region, Staff, Store, Tenant

# --- organisation -------------------------------------------------------------

STORE_PROFILE_FIELDS_FOR_MANAGERS = {
    "phone", "opening_hours", "wecom_contact_qr_url", "community_qr_url",
}


@read_rule(Tenant)
@read_rule(Brand)
@read_rule(Region)
def _whole_tenant(actor):
    return true()


@write_rule(Tenant)
@write_rule(Brand)
@write_rule(Region)
def _hq_only(actor, record, action):
    return actor.is_hq


@read_rule(Store)
def _stores(actor):
    return true() if actor.is_hq else Store.id == actor.store_id


@write_rule(Store)
def _store_writes(actor, store, action):
    if actor.is_hq:
        return True
    # Managers keep their own store's contact details and hours current.
    return actor.is_manager and store.id == actor.store_id and action == "update_profile"


@read_rule(Staff)
def _staff(actor):
    return true() if actor.is_hq else Staff.store_id == actor.store_id


@write_rule(Staff)
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
