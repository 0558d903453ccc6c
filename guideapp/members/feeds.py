"""HQ's feeds as use cases: orders, refunds and import files, once the policy allows them.

The CLI imports as the operator (no actor) through `imports.start_import` directly."""

from __future__ import annotations

from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.members import imports, orders
from guideapp.members.access import FEED_ORDERS


def feed_order(session: Session, *, actor: Actor, data: dict):
    policy.require(actor, FEED_ORDERS)
    return orders.ingest_order(session, tenant_id=actor.tenant_id, data=data)


def feed_refund(session: Session, *, actor: Actor, data: dict):
    policy.require(actor, FEED_ORDERS)
    return orders.ingest_refund(session, tenant_id=actor.tenant_id, data=data)


def start_import(session: Session, *, actor: Actor, **options):
    """The import as a job (202); (job, created)."""
    policy.require(actor, FEED_ORDERS)
    return imports.start_import(session, **_as(actor), **options)


def import_file(session: Session, *, actor: Actor, **options) -> dict:
    """The import run to the end inside the request (`?wait=true`): its report."""
    policy.require(actor, FEED_ORDERS)
    return imports.import_now(session, **_as(actor), **options)


def _as(actor: Actor) -> dict:
    return {
        "tenant_id": actor.tenant_id,
        "started_by": actor.staff_id,
        "store_id": actor.store_id,
    }
