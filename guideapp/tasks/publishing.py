"""Publishing a campaign runs as a job: a batch of stores per checkpoint, once per store.

`start_publish` checks the campaign and queues the job (the API answers 202 at once);
the job's units each lock the campaign, fan it out to the next stores that have none of
its tasks, and save where they got to in the same transaction. A worker killed mid-way
loses only its current batch; the re-run skips stores already published, so nothing is
doubled. `publish` is the old synchronous publish (`?wait=true`, scripts, benchmarks):
the same job run to the end inside the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp import jobs
from guideapp import policy
from guideapp.policy.actor import Actor
from guideapp.db import utcnow
from guideapp.errors import InvalidState, NotFound
from guideapp.jobs.service import find_by_key
from guideapp.tasks import fanout
from guideapp.tasks.models import Campaign

KIND = "campaign.publish"
DEFAULT_BATCH_STORES = 200


def start_publish(
    session: Session,
    *,
    actor: Actor,
    campaign_id: str,
    idempotency_key: str | None = None,
    batch_stores: int | None = None,
    enqueue: bool = True,
) -> tuple[jobs.Job, bool]:
    """The publish job of a draft campaign: (job, True) when queued now, (job, False) when
    this key already started it or a publish of it is still under way."""
    if idempotency_key:
        earlier = find_by_key(
            session,
            actor.tenant_id,
            actor.staff_id,
            idempotency_key,
            kind=KIND,
            subject=f"campaign:{campaign_id}",
        )
        if earlier is not None:
            return earlier, False
    # Locked: a second publish of the same campaign waits, then finds the job (or the state).
    campaign = policy.get_writable(
        session, actor, Campaign, campaign_id, "publish", for_update=True
    )
    if campaign.state != "draft":
        raise InvalidState(f"Campaign is {campaign.state}; only drafts can be published.")
    return jobs.start(
        session,
        tenant_id=actor.tenant_id,
        kind=KIND,
        params={"campaign_id": campaign.id, "batch_stores": batch_stores},
        started_by=actor.staff_id,
        store_id=actor.store_id,
        subject=f"campaign:{campaign.id}",
        total=len(fanout.stores_to_publish(session, campaign)),
        idempotency_key=idempotency_key,
        enqueue=enqueue,
    )


def publish(session: Session, *, actor: Actor, campaign_id: str) -> dict:
    """Publish now, in the caller's transaction (all stores in one unit); the job is kept."""
    job, created = start_publish(
        session, actor=actor, campaign_id=campaign_id, batch_stores=0, enqueue=False
    )
    if not created:
        raise InvalidState(
            f"This campaign is being published by job {job.id} ({job.state}); "
            f"follow it at {jobs.job_url(job.id)}."
        )
    return jobs.run_inline(session, job)


@jobs.kind(KIND, unit="stores")
def _publish_job(ctx: jobs.JobContext) -> dict:
    campaign_id = ctx.params["campaign_id"]
    batch = ctx.params.get("batch_stores")
    batch = DEFAULT_BATCH_STORES if batch is None else int(batch)  # 0: every store at once
    done = ctx.checkpoint
    done.setdefault("tasks", 0)
    done.setdefault("targets", 0)
    while True:
        with ctx.unit() as session:
            campaign = session.scalar(
                select(Campaign)
                .where(Campaign.id == campaign_id, Campaign.tenant_id == ctx.tenant_id)
                .with_for_update()
            )
            if campaign is None:
                raise NotFound(f"Campaign {campaign_id} not found.")
            if campaign.state == "cancelled":
                raise InvalidState(
                    "The campaign was cancelled while it was being published; publishing "
                    "stopped (the tasks already sent were withdrawn with the campaign)."
                )
            if campaign.state == "published":
                break  # finished by an earlier run of this job
            stores = fanout.stores_to_publish(
                session, campaign, after=done.get("after"), limit=batch or None
            )
            if stores:
                counts = fanout.publish_campaign(session, campaign, stores)
                done["after"] = stores[-1]
                done["tasks"] += counts["tasks"]
                done["targets"] += counts["targets"]
                ctx.progress(ctx.done + len(stores), max(ctx.total or 0, ctx.done + len(stores)))
            last = not batch or len(stores) < batch
            if last:
                campaign.state, campaign.published_at = "published", utcnow()
                session.flush()
        if last:
            break
    return {
        "campaign_id": campaign_id,
        "state": "published",
        "tasks": done["tasks"],
        "targets": done["targets"],
    }
