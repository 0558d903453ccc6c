"""Flask commands: database migrations and the demo tenant."""
from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from flask import Flask, current_app
from flask.cli import AppGroup

from guideapp.config import PROJECT_ROOT
from guideapp.db import transaction
from guideapp.migrations import alembic_config

db_cli = AppGroup("db", help="Database schema (alembic migrations).")
demo_cli = AppGroup("demo", help="The demo tenant.")


def _session():
    return current_app.extensions["guideapp"]["sessionmaker"]()


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision):
    """Migrate the database up to REVISION (default: head)."""
    command.upgrade(alembic_config(current_app.config), revision)


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision):
    """Migrate the database down to REVISION ('base' empties it)."""
    command.downgrade(alembic_config(current_app.config), revision)


@demo_cli.command("load")
@click.option("--fixtures", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=PROJECT_ROOT / "fixtures" / "demo", show_default=True)
def demo_load(fixtures):
    """Load the demo tenant unless it is already there."""
    from guideapp.demo import load_demo

    with _session() as session, transaction(session):
        tenant = load_demo(session, fixtures)
    click.echo("demo tenant loaded" if tenant else "demo tenant already present")


@demo_cli.command("logins")
def demo_logins():
    """Print the demo logins."""
    from guideapp.demo import DEMO_LOGINS, DEMO_PASSWORD

    click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for phone, who in DEMO_LOGINS:
        click.echo(f"  {phone}  {who}")


def register_cli(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(demo_cli)
