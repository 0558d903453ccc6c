"""`flask --app wsgi commissions settle --month YYYY-MM [--tenant slug] [--enqueue]`."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from guideapp.cli.common import progress, tenants_to_run
from guideapp.commissions.settlement import start_settlement
from guideapp.db import transaction
from guideapp.errors import DomainError
from guideapp.jobs.models import Job
from guideapp.jobs.runner import Runner, run_to_end

commissions_cli = AppGroup("commissions", help="Guide commissions: monthly settlement.")


@commissions_cli.command("settle")
@click.option("--month", required=True, help="The month to close, YYYY-MM (tenant time zone).")
@click.option("--tenant", "slug", help="Only this tenant (slug); default: every tenant.")
@click.option(
    "--enqueue",
    is_flag=True,
    help="Hand each tenant's close to the job workers and print the job ids, instead of "
    "running it here.",
)
def settle(month: str, slug: str | None, enqueue: bool):
    """Close the month and write its statements; running it again changes nothing.

    Each tenant's close is a job (listed by GET /api/v1/jobs), run here unless --enqueue.
    """
    extension = current_app.extensions["guideapp"]
    maker, queue = extension["sessionmaker"], extension["jobs"]
    tenants = tenants_to_run(slug)
    with progress(f"closing {month}", unit="tenants", total=len(tenants)) as bar:
        for done, (tenant_id, tenant_slug) in enumerate(tenants, start=1):
            _settle_one(maker, queue, month, tenant_id, tenant_slug, enqueue)
            bar.update(done)


def _settle_one(maker, queue, month: str, tenant_id: str, tenant_slug: str, enqueue: bool):
    with maker() as session, transaction(session):
        try:
            job, _ = start_settlement(session, tenant_id=tenant_id, month=month, enqueue=enqueue)
        except DomainError as error:
            raise click.ClickException(f"{tenant_slug}: {error.message}") from error
    if enqueue:
        click.echo(f"{tenant_slug}: {month} queued as job {job.id} ({job.state})")
        return
    run_to_end(Runner(maker, queue.settings), job.id)  # here, retrying here
    with maker() as session:
        job = session.get(Job, job.id)
    if job.state != "succeeded":
        raise click.ClickException(f"{tenant_slug}: {job.error or job.state} (job {job.id})")
    result = job.result
    verb = "closed" if result["created"] else "already closed"
    click.echo(
        f"{tenant_slug}: {month} {verb}: {result['entries']} entries, "
        f"net {result['net_fen']} fen ({result['state']})"
    )
