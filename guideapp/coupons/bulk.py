"""HQ issues a template to a segment of members, as a job (docs/jobs.md): one keyset batch
of members per unit of work.

`start_bulk_issue` checks what needs no work (HQ, the template, its stock, the segment's
tags, stores and regions), counts the segment and queues the job; the API answers 202.
Each unit re-locks the template (issuance.issue checks stock and limits under that lock),
takes the next batch of the segment's members in id order after the checkpoint, issues
set-based and commits with the checkpoint, so a million members never hold one giant
transaction nor the template's lock for long. Every coupon's key is
`bulk:<job id>:<member id>`: a rerun after a killed worker issues nothing twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from guideapp import jobs, policy
from guideapp.coupons import issuance
from guideapp.coupons.access import ISSUE
from guideapp.coupons.models import Coupon, CouponTemplate
from guideapp.db import refresh_planner_statistics, utcnow
from guideapp.errors import Conflict, Forbidden, InvalidInput, InvalidState
from guideapp.members.models import Member
from guideapp.members.segments import check_segment, has_segment, segment_filter
from guideapp.org.models import Region, Store
from guideapp.policy.actor import Actor
from guideapp.policy.references import resolve_ids

KIND = "coupons.bulk_issue"
DEFAULT_BATCH = issuance.BATCH  # members per unit: one issuance batch, one commit
ANALYZE_AFTER = 10_000  # coupons issued: the planner is told (db.refresh_planner_statistics)


def start_bulk_issue(
    session: Session,
    *,
    actor: Actor,
    template_id: str,
    data: dict,
    idempotency_key: str | None = None,
    batch: int | None = None,
    enqueue: bool = True,
) -> tuple[jobs.Job, bool]:
    """The job issuing `template_id` to the members `data` names (HQ): (job, True) when
    queued now; (job, False) for this key's job, or the same issue still under way."""
    template = policy.get_visible(
        session, actor, CouponTemplate, template_id, label="Coupon template"
    )
    if not actor.is_hq:
        raise Forbidden("Coupons are issued to a segment by HQ.")
    policy.require(actor, ISSUE, template)
    if not template.active:
        raise Conflict("This coupon template is paused.", errors={"template_id": ["Paused."]})
    if template.stock_total is not None and template.issued_count >= template.stock_total:
        message = issuance.REFUSALS[issuance.OUT_OF_STOCK].format(stock=template.stock_total)
        raise Conflict(
            message, errors={"template_id": [message], "reason": [issuance.OUT_OF_STOCK]}
        )
    targeting: dict[str, Any] = {
        "segment": data.get("segment") or {},
        "store_ids": list(dict.fromkeys(data.get("store_ids") or ())),
        "region_ids": list(dict.fromkeys(data.get("region_ids") or ())),
        "all": bool(data.get("all")),
    }
    check_segment(session, actor, targeting["segment"])
    resolve_ids(session, actor, Store, targeting["store_ids"], field="store_ids", load=False)
    resolve_ids(session, actor, Region, targeting["region_ids"], field="region_ids", load=False)
    if not (
        targeting["all"]
        or has_segment(targeting["segment"])
        or targeting["store_ids"]
        or targeting["region_ids"]
    ):
        raise InvalidInput(
            errors={"segment": ["Name the members: a segment, store_ids, region_ids, or all."]}
        )
    now = utcnow()
    total = session.scalar(
        select(func.count()).select_from(Member).where(members_of(actor.tenant_id, targeting, now))
    )
    digest = hashlib.sha256(json.dumps(targeting, sort_keys=True).encode()).hexdigest()[:16]
    return jobs.start(
        session,
        tenant_id=actor.tenant_id,
        kind=KIND,
        params={
            "template_id": template.id,
            **targeting,
            "now": now.isoformat(),
            "batch": batch or DEFAULT_BATCH,
        },
        started_by=actor.staff_id,
        store_id=actor.store_id,
        subject=f"coupon-issue:{template.id}:{digest}",
        total=total,
        idempotency_key=idempotency_key,
        enqueue=enqueue,
    )


def members_of(tenant_id: str, targeting: dict, now: datetime) -> ColumnElement[bool]:
    """The tenant's active members in the segment, at home in the stores or regions named."""
    clauses = [Member.tenant_id == tenant_id, segment_filter(targeting.get("segment") or {}, now)]
    places = []
    if targeting.get("store_ids"):
        places.append(Member.store_id.in_(targeting["store_ids"]))
    if targeting.get("region_ids"):
        places.append(
            Member.store_id.in_(
                select(Store.id).where(
                    Store.tenant_id == tenant_id, Store.region_id.in_(targeting["region_ids"])
                )
            )
        )
    if places:
        clauses.append(or_(*places))
    return and_(*clauses)


def _progress(ctx: jobs.JobContext, before: int):
    """issuance.issue's on_batch: members done, saved with the unit."""
    return lambda done: ctx.progress(before + done)


@jobs.kind(KIND, unit="members")
def _bulk_issue_job(ctx: jobs.JobContext) -> dict:
    params, state = ctx.params, ctx.checkpoint
    state.setdefault("issued", 0)
    state.setdefault("skipped", {})
    size = int(params.get("batch") or DEFAULT_BATCH)
    where = members_of(ctx.tenant_id, params, datetime.fromisoformat(params["now"]))
    job_id = ctx.job_id
    how = issuance.Issue(source="bulk", source_id=job_id, key=lambda m: f"bulk:{job_id}:{m}")
    while True:
        # The unit's start is the cancel checkpoint: the job's row is locked while a unit
        # runs, so a cancel lands between batches and what was issued stays.
        with ctx.unit() as session:
            template = issuance.lock_template(
                session, tenant_id=ctx.tenant_id, template_id=params["template_id"]
            )
            if not template.active:
                raise InvalidState(
                    f"The template was paused during the issue; it stopped after "
                    f"{state['issued']} coupons (they stay issued)."
                )
            stmt = select(Member.id).where(where).order_by(Member.id).limit(size)
            if state.get("after"):
                stmt = stmt.where(Member.id > state["after"])
            member_ids = list(session.scalars(stmt))
            before = ctx.done
            issued = issuance.issue(
                session,
                template=template,
                member_ids=member_ids,
                how=how,
                on_batch=_progress(ctx, before),
            )
            state["issued"] += len(issued.coupons)
            for reason, count in issued.skipped.items():
                state["skipped"][reason] = state["skipped"].get(reason, 0) + count
            if member_ids:
                state["after"] = member_ids[-1]
            done = before + len(member_ids)
            last = len(member_ids) < size
            ctx.progress(done, done if last else max(ctx.total or 0, done))
            if last and state["issued"] >= ANALYZE_AFTER:
                refresh_planner_statistics(session, Coupon.__table__)
        if last:
            break
    return {
        "template_id": params["template_id"],
        "members": ctx.done,
        "issued": state["issued"],
        "skipped": dict(state["skipped"]),
    }
