"""What a plan or a task names (stores, regions, store tags, material, quick reply; member
tags: members.segments.check_segment) must exist in the caller's reach: else 422 naming
the field, never "0 tasks"."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.coupons.models import CouponTemplate
from guideapp.policy.references import resolve_id, resolve_ids, unknown
from guideapp.policy.actor import Actor
from guideapp.materials.models import Material
from guideapp.org.models import Region, Store, StoreTag
from guideapp.replies.models import QuickReply


def check_target(session: Session, actor: Actor, target: dict, *, field: str = "target") -> None:
    for key, model in (("region_ids", Region), ("store_ids", Store)):
        resolve_ids(session, actor, model, target.get(key), field=f"{field}.{key}", load=False)
    tags = list(dict.fromkeys(target.get("store_tags") or ()))
    if tags:
        known = set(
            session.scalars(
                select(StoreTag.tag)
                .where(StoreTag.tenant_id == actor.tenant_id, StoreTag.tag.in_(tags))
                .distinct()
            )
        )
        missing = [t for t in tags if t not in known]
        if missing:
            raise unknown(f"{field}.store_tags", missing, "store tag")


def check_suggestions(
    session: Session,
    actor: Actor,
    data: dict,
    *,
    material_field: str = "suggested_material_id",
    reply_field: str = "suggested_reply_id",
) -> None:
    resolve_id(session, actor, Material, data.get(material_field), field=material_field)
    resolve_id(session, actor, QuickReply, data.get(reply_field), field=reply_field)


def check_params(session: Session, actor: Actor, params: dict) -> None:
    """A coupon_expiring rule's template must be the tenant's."""
    template_id = params.get("template_id")
    resolve_id(session, actor, CouponTemplate, template_id, field="params.template_id")
