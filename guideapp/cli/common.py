"""What every command shares: a session of the app's database, the tenants a job runs for."""

from __future__ import annotations

import click
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.org.models import Tenant


def cli_session() -> Session:
    return current_app.extensions["guideapp"]["sessionmaker"]()


def tenants_to_run(slug: str | None) -> list[tuple[str, str]]:
    """(id, slug) of the one tenant named by --tenant, or of every tenant; jobs then run
    one transaction per tenant."""
    with cli_session() as session:
        query = select(Tenant.id, Tenant.slug).order_by(Tenant.slug)
        tenants = session.execute(query.where(Tenant.slug == slug) if slug else query).all()
    if slug and not tenants:
        raise click.BadParameter(f"no tenant {slug!r}", param_hint="--tenant")
    return list(tenants)
