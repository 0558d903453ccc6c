"""Flask commands (top floor, a way in like the routes): migrations, the demo tenant, bulk
imports; the scheduler and settlement groups live beside this module."""

from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from flask import Flask, current_app
from flask.cli import AppGroup

from guideapp.cli.common import cli_session as _session
from guideapp.cli.common import progress
from guideapp.config import PROJECT_ROOT
from guideapp.db import transaction
from guideapp.migrations import alembic_config

db_cli = AppGroup("db", help="Database schema (alembic migrations).")
demo_cli = AppGroup("demo", help="The demo tenant.")
import_cli = AppGroup("import", help="Bulk import of members and orders (CSV / .xlsx).")


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
@click.option(
    "--fixtures",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=PROJECT_ROOT / "fixtures" / "demo",
    show_default=True,
)
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


def _import_command(kind: str):
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option(
        "--tenant",
        "tenant_slug",
        default="stride",
        show_default=True,
        help="Slug of the brand group to import into.",
    )
    @click.option("--dry-run", is_flag=True, help="Validate and report; write nothing.")
    @click.option(
        "--mode",
        type=click.Choice(["fill", "overwrite"]),
        default="fill",
        show_default=True,
        help="fill: only fill what members lack; overwrite: filled cells replace values.",
    )
    @click.option(
        "--enqueue",
        is_flag=True,
        help="Hand the import to the job workers and print the job id, instead of running it here.",
    )
    def command_(file: Path, tenant_slug: str, dry_run: bool, mode: str, enqueue: bool):
        job = _start_import(kind, file, tenant_slug, dry_run, mode, enqueue)
        if enqueue:
            click.echo(f"{kind} import of {file.name} queued as job {job.id} ({job.state})")
            return
        report = _run_job(job, f"{kind} import of {file.name}")
        _echo_report(report, file)
        if report["failed"]:
            raise SystemExit(1)

    command_.__doc__ = (
        f"Import {kind} from FILE (.csv UTF-8 / UTF-8-BOM / GBK, or .xlsx), as a job run "
        "here (a progress bar on a terminal) unless --enqueue."
    )
    return import_cli.command(kind)(command_)


def _start_import(kind: str, file: Path, tenant_slug: str, dry_run: bool, mode: str, enqueue):
    from sqlalchemy import select

    from guideapp.errors import DomainError
    from guideapp.members.import_rows import Limits
    from guideapp.members.imports import start_import
    from guideapp.org.models import Tenant

    with _session() as session:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.slug == tenant_slug))
        if tenant_id is None:
            raise click.ClickException(f"No brand group with slug '{tenant_slug}'.")
        try:
            with transaction(session), file.open("rb") as stream:
                job, _ = start_import(
                    session,
                    tenant_id=tenant_id,
                    kind=kind,
                    filename=file.name,
                    file=stream,
                    dry_run=dry_run,
                    mode=mode,
                    limits=Limits(
                        max_rows=current_app.config["IMPORT_MAX_ROWS"],
                        max_xlsx_bytes=current_app.config["IMPORT_MAX_XLSX_MB"] * 1024 * 1024,
                    ),
                    enqueue=enqueue,
                    batch_rows=current_app.config["IMPORT_BATCH_ROWS"],
                )
        except DomainError as exc:
            raise click.ClickException(_details(exc)) from exc
        session.expunge(job)
    return job


def _details(exc) -> str:
    return "; ".join(m for ms in (exc.errors or {}).values() for m in ms) or exc.message


def _run_job(job, label: str) -> dict:
    """Run a recorded job here (retrying here), with a progress bar; its result."""
    from guideapp.jobs.models import Job
    from guideapp.jobs.runner import Runner, run_to_end

    extension = current_app.extensions["guideapp"]
    maker, settings = extension["sessionmaker"], extension["jobs"].settings
    with progress(label, unit=job.progress_unit, total=job.progress_total) as bar:
        runner = Runner(maker, settings, on_unit=lambda ctx: bar.update(ctx.done, ctx.total))
        run_to_end(runner, job.id)
    with maker() as session:
        finished = session.get_one(Job, job.id)
    if finished.state != "succeeded":
        raise click.ClickException(f"{finished.error or finished.state} (job {job.id})")
    return finished.result


def _echo_report(report: dict, file: Path, limit: int = 50) -> None:
    mode = "dry run, nothing written" if report["dry_run"] else "written"
    click.echo(f"{report['kind']} import of {file.name} ({mode})")
    click.echo(
        f"  rows {report['rows']}  imported {report['imported']}  "
        f"updated {report['updated']}  unchanged {report['unchanged']}  "
        f"failed {report['failed']}"
    )
    errors = report["errors"]
    if errors:
        found = report.get("errors_total", len(errors))
        shown = f"first {min(limit, len(errors))} of {found}" if found > limit else found
        click.echo(f"errors ({shown}):")
        for error in errors[:limit]:
            click.echo(f"  row {error['row']:>6}  {error['field']:<15} {error['message']}")
    notes = report["notes"]
    if notes:
        found = report.get("notes_total", len(notes))
        shown = f"first {min(limit, len(notes))} of {found}" if found > limit else found
        click.echo(f"notes ({shown}):")
        for note in notes[:limit]:
            click.echo(f"  row {note['row']:>6}  {note['field'] or '':<15} {note['message']}")


import_members = _import_command("members")
import_orders = _import_command("orders")


def register_cli(app: Flask) -> None:
    from guideapp.cli.commissions import commissions_cli
    from guideapp.cli.jobs import jobs_cli
    from guideapp.cli.scheduler import scheduler_cli
    from guideapp.cli.wecom import wecom_cli
    from guideapp.wiring import connect_reactions

    connect_reactions()  # commands run services: their reactions must be connected
    groups = (db_cli, demo_cli, import_cli, scheduler_cli, commissions_cli, jobs_cli, wecom_cli)
    for group in groups:
        app.cli.add_command(group)
