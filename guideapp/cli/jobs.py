"""`flask --app wsgi jobs worker`: run the job queue's workers in this process."""

from __future__ import annotations

import importlib

import click
from flask import current_app
from flask.cli import AppGroup

jobs_cli = AppGroup("jobs", help="Background jobs (docs/jobs.md).")


def _queue():
    return current_app.extensions["guideapp"]["jobs"]


@jobs_cli.command("worker")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker threads (default GUIDEAPP_JOBS_WORKERS, 2).",
)
@click.option(
    "--import",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Also import MODULE first (job kinds or hooks defined outside guideapp).",
)
def worker(workers: int | None, modules: tuple[str, ...]):
    """Run jobs until SIGTERM (finish the current unit, then stop) or SIGINT.

    Jobs whose worker died, or whose message was lost, are re-sent at start and every
    GUIDEAPP_JOBS_RECOVER_EVERY seconds, and run again from their last checkpoint.
    """
    for module in modules:
        importlib.import_module(module)
    config, queue = current_app.config, _queue()
    workers = workers or config["JOBS_WORKERS"]
    click.echo(f"jobs worker: {workers} thread(s) on {queue.backend} queue '{queue.name}'")
    try:
        queue.run_worker(
            workers,
            recover_every=config["JOBS_RECOVER_EVERY_SECONDS"],
            poll_max_seconds=config["JOBS_POLL_MAX_SECONDS"],
        )
    except KeyboardInterrupt:  # a second Ctrl-C: stop now; unfinished units roll back
        pass
    click.echo("jobs worker stopped")


@jobs_cli.command("work-off")
def work_off():
    """Run every job due now in this process, then exit (no worker needed)."""
    queue = _queue()
    queue.recover()
    click.echo(f"ran {queue.work_off()} job message(s)")
