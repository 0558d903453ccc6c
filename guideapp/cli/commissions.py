"""`flask --app wsgi commissions settle --month YYYY-MM [--tenant slug]`: close a month."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from guideapp.commissions.settlement import close_month
from guideapp.cli.common import tenants_to_run
from guideapp.db import transaction
from guideapp.errors import DomainError

commissions_cli = AppGroup("commissions", help="Guide commissions: monthly settlement.")


@commissions_cli.command("settle")
@click.option("--month", required=True, help="The month to close, YYYY-MM (tenant time zone).")
@click.option("--tenant", "slug", help="Only this tenant (slug); default: every tenant.")
def settle(month: str, slug: str | None):
    """Close the month and write its statements; running it again changes nothing."""
    maker = current_app.extensions["guideapp"]["sessionmaker"]
    for tenant_id, tenant_slug in tenants_to_run(slug):
        with maker() as session, transaction(session):  # one tenant, one transaction
            try:
                settled, created = close_month(session, tenant_id=tenant_id, month=month)
            except DomainError as error:
                raise click.ClickException(f"{tenant_slug}: {error.message}") from error
            verb = "closed" if created else "already closed"
            click.echo(
                f"{tenant_slug}: {month} {verb}: {settled.entries} entries, "
                f"net {settled.net_fen} fen ({settled.state})"
            )
