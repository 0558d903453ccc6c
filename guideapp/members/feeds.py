"""HQ's feeds as use cases: orders, refunds and import files, once the policy allows them.

The CLI imports as the operator (no actor) through `imports.run_import` directly."""

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


def import_file(session: Session, *, actor: Actor, **options) -> dict:
    policy.require(actor, FEED_ORDERS)
    return imports.run_import(
        session, tenant_id=actor.tenant_id, by_staff_id=actor.staff_id, **options
    )
