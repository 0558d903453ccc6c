"""`flask --app wsgi scheduler tick`: run SOP rules and the calendar; safe to run any time."""

from __future__ import annotations

from datetime import datetime

import click
from flask import current_app
from flask.cli import AppGroup

from guideapp.cli.common import progress, tenants_to_run
from guideapp.db import transaction
from guideapp.tasks.scheduler import tick

scheduler_cli = AppGroup("scheduler", help="The task scheduler (run from cron).")


@scheduler_cli.command("tick")
@click.option("--tenant", "slug", help="Only this tenant (slug); default: every tenant.")
@click.option(
    "--now",
    "now",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z"]),
    help="Pretend it is this time (tests, replays), e.g. 2026-11-23T10:00:00+0800.",
)
def scheduler_tick(slug: str | None, now: datetime | None):
    """Create every due SOP and calendar task exactly once, catching up missed days."""
    maker = current_app.extensions["guideapp"]["sessionmaker"]
    tenants = tenants_to_run(slug)
    with progress("scheduler tick", unit="tenants", total=len(tenants)) as bar:
        for done, (tenant_id, tenant_slug) in enumerate(tenants, start=1):
            with maker() as session, transaction(session):  # one tenant, one transaction
                run = tick(session, tenant_id=tenant_id, now=now)
                made = ", ".join(
                    f"{count} {kind.replace('_', ' ')}" for kind, count in run.created.items()
                )
                click.echo(f"{tenant_slug}: days {run.from_day}..{run.through_day}: created {made}")
            bar.update(done)
