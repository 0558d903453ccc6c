"""`flask --app wsgi commissions settle --month YYYY-MM [--tenant slug]`: close a month."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from guideapp.commissions.settlement import close_month
from guideapp.db import transaction
from guideapp.errors import DomainError
from guideapp.org.models import Tenant

commissions_cli = AppGroup("commissions", help="Guide commissions: monthly settlement.")


@commissions_cli.command("settle")
@click.option("--month", required=True, help="The month to close, YYYY-MM (tenant time zone).")
@click.option("--tenant", "slug", help="Only this tenant (slug); default: every tenant.")
def settle(month: str, slug: str | None):
    """Close the month and write its statements; running it again changes nothing."""
    maker = current_app.extensions["guideapp"]["sessionmaker"]
    with maker() as session:
        query = select(Tenant.id, Tenant.slug).order_by(Tenant.slug)
        tenants = session.execute(query.where(Tenant.slug == slug) if slug else query).all()
    if slug and not tenants:
        raise click.BadParameter(f"no tenant {slug!r}", param_hint="--tenant")
    for tenant_id, tenant_slug in tenants:
        with maker() as session, transaction(session):  # one tenant, one transaction
            try:
                settled, created = close_month(session, tenant_id=tenant_id, month=month)
            except DomainError as error:
                raise click.ClickException(f"{tenant_slug}: {error.message}") from error
            verb = "closed" if created else "already closed"
            click.echo(f"{tenant_slug}: {month} {verb}: {settled.entries} entries, "
                       f"net {settled.net_fen} fen ({settled.state})")
