"""What every command shares: a session of the app's database, the tenants a job runs for,
progress bars."""

from __future__ import annotations

import sys
import time
from typing import Any

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


class Progress:
    """A progress bar (rich) on a terminal, plain lines otherwise (cron, logs, pipes).

    with progress("importing members.csv", unit="rows") as bar:
        bar.update(done, total)
    """

    PLAIN_EVERY_SECONDS = 1.0  # plain lines: at most one a second, and the last one

    def __init__(self, label: str, *, unit: str, total: int | None, terminal: bool):
        self.label, self.unit, self.total = label, unit, total
        self.terminal = terminal
        self._last_line = 0.0
        self._bar: Any = None
        self._task: Any = None
        self._printed: tuple | None = None

    def __enter__(self) -> Progress:
        if self.terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def update(self, done: int, total: int | None = None) -> None:
        self.total = total if total is not None else self.total
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=self.total)
            return
        now = time.monotonic()
        final = self.total is not None and done >= self.total
        if (final or now - self._last_line >= self.PLAIN_EVERY_SECONDS) and self._printed != (
            done,
            self.total,
        ):
            of = f"/{self.total}" if self.total is not None else ""
            click.echo(f"{self.label}: {done}{of} {self.unit}")
            self._last_line, self._printed = now, (done, self.total)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def progress(label: str, *, unit: str, total: int | None = None) -> Progress:
    return Progress(label, unit=unit, total=total, terminal=sys.stdout.isatty())
