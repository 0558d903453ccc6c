"""`GET /metrics` for Prometheus (requests, pools, jobs, scheduler, WeCom events: see
http_metrics.py and jobs/metrics.py), and `flask --app wsgi jobs stats`.

Who may scrape: with GUIDEAPP_METRICS_TOKEN set, whoever sends it as a bearer token (and
nobody else); without it, only a scraper on this machine (loopback, not relayed by a proxy:
a request carrying X-Forwarded-For came from outside through one).
"""

from __future__ import annotations

import hmac

import click
from flask import Blueprint, Flask, Response, current_app, request
from flask.cli import with_appcontext
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from guideapp.errors import Forbidden, InvalidInput, Unauthorized
from guideapp.http_metrics import OperationsCollector, observe_requests, registry_for
from guideapp.jobs.metrics import JobsCollector, read_figures
from guideapp.jobs.models import STATES

blp = Blueprint("metrics", __name__)

LOOPBACK = {"127.0.0.1", "::1"}


def register_metrics(app: Flask) -> None:
    from guideapp.cli.jobs import jobs_cli

    extensions = app.extensions["guideapp"]
    registry = registry_for(app)  # requests and pools (every worker's under gunicorn)
    registry.register(JobsCollector(extensions["sessionmaker"], extensions["jobs"]))
    registry.register(OperationsCollector(extensions["sessionmaker"]))
    observe_requests(app)
    extensions["metrics"] = registry
    app.register_blueprint(blp)
    jobs_cli.add_command(stats)


@blp.get("/metrics")
def metrics():
    _check_scraper(current_app.config.get("METRICS_TOKEN"))
    if request.args:  # as everywhere: a parameter nobody reads is refused, not ignored
        raise InvalidInput(
            "GET /metrics takes no query parameters.",
            errors={name: ["Unknown parameter."] for name in request.args},
        )
    body = generate_latest(current_app.extensions["guideapp"]["metrics"])
    return Response(
        body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
    )


def _check_scraper(token: str | None) -> None:
    if token:
        scheme, _, sent = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.encode(), token.encode()):
            raise Unauthorized(
                "Send the metrics token (GUIDEAPP_METRICS_TOKEN) as 'Authorization: Bearer ...'.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        return
    relayed = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    if request.remote_addr not in LOOPBACK or relayed:
        raise Forbidden(
            "Metrics answer scrapers on this machine only; set GUIDEAPP_METRICS_TOKEN to "
            "scrape from elsewhere with a bearer token."
        )


@click.command("stats")
@with_appcontext
def stats():
    """Print the jobs' figures that GET /metrics exposes: by kind and state, queue depth,
    oldest queued age."""
    extensions = current_app.extensions["guideapp"]
    queue = extensions["jobs"]
    with extensions["sessionmaker"]() as session:
        figures = read_figures(session, queue)
    click.echo(f"queue: {figures.backend} '{figures.queue}'")
    if figures.pending is None:
        click.echo("  unreachable (messages unknown; the jobs below are the database's)")
    else:
        click.echo(f"  pending {figures.pending}  scheduled {figures.scheduled}")
    click.echo(f"oldest queued job: {figures.oldest_queued_seconds:.0f} s")
    kinds = sorted({kind for kind, _ in figures.jobs})
    states = STATES
    width = max([len(k) for k in kinds] + [4])
    click.echo(f"{'kind':<{width}}  " + "  ".join(f"{s:>9}" for s in states))
    for kind in kinds:
        counts = "  ".join(f"{figures.jobs.get((kind, s), 0):>9}" for s in states)
        click.echo(f"{kind:<{width}}  {counts}")
