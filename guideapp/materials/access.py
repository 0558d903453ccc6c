"""Who sees and changes materials, their categories, uploads and shares."""

from sqlalchemy import select, true

from guideapp import policy
from guideapp.changelog.scopes import scopes_followed_in_sql
from guideapp.materials.models import (
    Material,
    MaterialAudience,
    MaterialCategory,
    Share,
    StoredUpload,
)


def _materials(actor):
    if actor.is_hq:
        return true()
    return Material.id.in_(
        select(MaterialAudience.material_id).where(
            MaterialAudience.scope.in_(scopes_followed_in_sql(actor))
        )
    )


def _material_writes(actor, material, action):
    if material.level == "hq":
        return actor.is_hq
    if material.level == "store":
        return (actor.is_hq or actor.is_manager) and (
            actor.is_hq or material.owner_store_id == actor.store_id
        )
    return material.owner_staff_id == actor.staff_id


def _shares(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return Share.store_id == actor.store_id
    return Share.staff_id == actor.staff_id


def register() -> None:
    policy.register_rules(Material, read=_materials, write=_material_writes)
    policy.register_rules(MaterialCategory, read=policy.whole_tenant, write=policy.hq_writes)
    # Tenant-wide: files are shared content.
    policy.register_rules(StoredUpload, read=policy.whole_tenant)
    policy.register_rules(Share, read=_shares)
