"""`flask --app wsgi wecom work | events | replay`: WeCom's stored callback events;
`wecom transfers`: customer transfers sent and polled now; `wecom sync-customers`: a guide's
existing WeCom customers imported."""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from guideapp.cli.common import tenants_to_run
from guideapp.db import transaction, utcnow
from guideapp.jobs.runner import Runner, run_to_end
from guideapp.jobs.service import start
from guideapp.wecom import customer_sync, events
from guideapp.wecom import transfers as wecom_transfers
from guideapp.wecom.models import WecomEvent, WecomTransfer

wecom_cli = AppGroup("wecom", help="WeCom callback events (docs/wecom.md).")


def _tenants_with_due_events(slug: str | None) -> list[tuple[str, str]]:
    maker = current_app.extensions["guideapp"]["sessionmaker"]
    with maker() as session:
        due = set(
            session.scalars(
                select(WecomEvent.tenant_id)
                .where(WecomEvent.state == "pending", WecomEvent.next_attempt_at <= utcnow())
                .distinct()
            )
        )
    return [(tenant_id, s) for tenant_id, s in tenants_to_run(slug) if tenant_id in due]


@wecom_cli.command("work")
@click.option("--tenant", "slug", help="Only this tenant (slug); default: every tenant.")
@click.option("--loop", is_flag=True, help="Keep going (every --every s) until Ctrl-C.")
@click.option("--every", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True)
def work(slug: str | None, loop: bool, every: float):
    """Process every due event here, as the job worker would (one drain job per tenant)."""
    maker = current_app.extensions["guideapp"]["sessionmaker"]
    queue = current_app.extensions["guideapp"]["jobs"]
    while True:
        for tenant_id, tenant_slug in _tenants_with_due_events(slug):
            with maker() as session, transaction(session):
                job, _ = start(session, tenant_id=tenant_id, kind=events.KIND, enqueue=False)
            run_to_end(Runner(maker, queue.settings), job.id)
            with maker() as session:
                result = session.get_one(type(job), job.id).result or {}
            click.echo(f"{tenant_slug}: " + ", ".join(f"{n} {k}" for k, n in result.items()))
        if not loop:
            return
        time.sleep(every)


@wecom_cli.command("events")
@click.option("--tenant", "slug", help="Only this tenant (slug).")
@click.option(
    "--state",
    type=click.Choice(["pending", "done", "ignored", "dead"]),
    default="dead",
    show_default=True,
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def list_events(slug: str | None, state: str, limit: int):
    """Stored events in a state, newest first (dead ones by default), with their error."""
    maker = current_app.extensions["guideapp"]["sessionmaker"]
    tenant_ids = [t for t, _ in tenants_to_run(slug)]
    with maker() as session:
        rows = session.scalars(
            select(WecomEvent)
            .where(WecomEvent.state == state, WecomEvent.tenant_id.in_(tenant_ids))
            .order_by(WecomEvent.received_at.desc())
            .limit(limit)
        ).all()
        for e in rows:
            kind = f"{e.event}/{e.change_type}" if e.change_type else e.event
            click.echo(
                f"{e.id}  {e.received_at:%Y-%m-%d %H:%M:%S}  {kind}  attempts {e.attempts}"
                + (f"  {e.error}" if e.error else "")
            )
    click.echo(f"{len(rows)} {state} event(s)")


@wecom_cli.command("replay")
@click.argument("event_ids", nargs=-1)
@click.option("--all-dead", is_flag=True, help="Every dead event (of --tenant, or all).")
@click.option("--tenant", "slug", help="With --all-dead: only this tenant (slug).")
def replay(event_ids: tuple[str, ...], all_dead: bool, slug: str | None):
    """Put dead events back to be processed now (attempts reset); a worker picks them up."""
    if not event_ids and not all_dead:
        raise click.UsageError("name event ids, or --all-dead")
    maker = current_app.extensions["guideapp"]["sessionmaker"]
    with maker() as session, transaction(session):
        stmt = select(WecomEvent).where(WecomEvent.state == "dead")
        if event_ids:
            stmt = stmt.where(WecomEvent.id.in_(event_ids))
        if slug or all_dead:
            stmt = stmt.where(WecomEvent.tenant_id.in_([t for t, _ in tenants_to_run(slug)]))
        found = session.scalars(stmt).all()
        for event in found:
            events.requeue(session, event)
    missing = set(event_ids) - {e.id for e in found}
    click.echo(f"replaying {len(found)} event(s)")
    if missing:
        raise click.ClickException(f"not dead or not found: {', '.join(sorted(missing))}")


@wecom_cli.command("transfers")
@click.option("--tenant", "slug", help="Only this tenant (slug); default: every tenant.")
def transfers_now(slug: str | None):
    """Send the due customer transfers and poll WeCom for the waiting ones now, here, as the
    job worker does on its own schedule (docs/wecom.md)."""
    maker = current_app.extensions["guideapp"]["sessionmaker"]
    queue = current_app.extensions["guideapp"]["jobs"]
    with maker() as session:
        open_ = set(
            session.scalars(
                select(WecomTransfer.tenant_id)
                .where(WecomTransfer.state.in_(wecom_transfers.OPEN))
                .distinct()
            )
        )
    for tenant_id, tenant_slug in tenants_to_run(slug):
        if tenant_id not in open_:
            continue
        with maker() as session, transaction(session):
            job, _ = start(session, tenant_id=tenant_id, kind=wecom_transfers.KIND, enqueue=False)
        run_to_end(Runner(maker, queue.settings), job.id)
        with maker() as session:
            result = session.get_one(type(job), job.id).result or {}
        click.echo(f"{tenant_slug}: " + (", ".join(f"{n} {k}" for k, n in result.items()) or "-"))


@wecom_cli.command("sync-customers")
@click.option("--tenant", "slug", required=True, help="The tenant (slug).")
@click.option("--userid", help="Only this guide's WeCom user id; default: every mapped guide.")
def sync_customers(slug: str, userid: str | None):
    """Import existing WeCom customers into members and relationships, here and now (the
    same job HQ starts with POST /api/v1/wecom/customer-syncs); run again: same rows."""
    maker = current_app.extensions["guideapp"]["sessionmaker"]
    queue = current_app.extensions["guideapp"]["jobs"]
    ((tenant_id, _),) = tenants_to_run(slug)
    with maker() as session, transaction(session):
        job, _ = customer_sync.start(session, tenant_id=tenant_id, userid=userid, enqueue=False)
    run_to_end(Runner(maker, queue.settings), job.id)
    with maker() as session:
        done = session.get_one(type(job), job.id)
        if done.state != "succeeded":
            raise click.ClickException(f"sync {done.state}: {done.error or ''}")
        result = done.result or {}
    click.echo(", ".join(f"{n} {k}" for k, n in result.items()))
