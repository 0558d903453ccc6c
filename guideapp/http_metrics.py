"""Per-request figures for Prometheus: rate and latency by endpoint and status, and database
connections in use; plus the scheduler's and WeCom's figures read at scrape time.

Under gunicorn every worker is its own process: with PROMETHEUS_MULTIPROC_DIR set
(gunicorn.conf.py sets it), prometheus-client keeps each worker's counts in files there and
a scrape of any worker sums them all. Without it (tests, `flask run`) they live in this
process. Endpoints are URL rules (`/api/v1/members/<member_id>`), never raw paths, so the
series stay few; the WeChat and WeCom callbacks are endpoints like any other, so their
counts and failures are the histogram's `_count` by status.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from flask import Flask, g, request
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from guideapp.changelog.replicas import REPLICA_READS

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Histogram(
    "guideapp_http_request_duration_seconds",
    "Requests by endpoint (URL rule), method and status, and how long they took.",
    ["method", "endpoint", "status"],
    buckets=BUCKETS,
    registry=None,
)
PULL_LAG = Histogram(
    "guideapp_sync_pull_changes_behind",
    "How far behind a phone's cursor was at an incremental pull (change-log sequence numbers "
    "between its cursor and the tenant's counter): how stale phones get between syncs.",
    buckets=(0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000),
    registry=None,
)
POOL_IN_USE = Gauge(
    "guideapp_db_connections_in_use",
    "Database connections checked out of the workers' pools (summed over live workers).",
    registry=None,
    multiprocess_mode="livesum",
)


def registry_for(app: Flask) -> CollectorRegistry:
    """The registry /metrics renders: the workers' files in multiprocess mode, else these
    metrics of this process; the collectors reading the database are added by the caller."""
    registry = CollectorRegistry(auto_describe=False)
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(PULL_LAG)
        registry.register(POOL_IN_USE)
        registry.register(REPLICA_READS)
    return registry


def observe_requests(app: Flask) -> None:
    engine = app.extensions["guideapp"]["engine"]

    @app.after_request
    def _observe(response):
        started = g.get("started")
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
            REQUESTS.labels(request.method, rule, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        if engine is not None and hasattr(engine.pool, "checkedout"):
            POOL_IN_USE.set(engine.pool.checkedout())
        return response


class OperationsCollector(Collector):
    """The scheduler's last run and its length per tenant, runs in the last day, and WeCom
    callback events by state (dead ones need a person), read at scrape time."""

    def __init__(self, sessionmaker):
        self.sessionmaker = sessionmaker

    def collect(self):
        from guideapp.db import utcnow
        from guideapp.tasks.models import SchedulerRun
        from guideapp.wecom.models import WecomEvent

        now = utcnow()
        newest = (
            select(SchedulerRun.tenant_id, func.max(SchedulerRun.started_at).label("started"))
            .group_by(SchedulerRun.tenant_id)
            .subquery()
        )
        with self.sessionmaker() as session:
            try:
                latest = session.execute(
                    select(
                        SchedulerRun.tenant_id, SchedulerRun.started_at, SchedulerRun.finished_at
                    ).join(
                        newest,
                        (newest.c.tenant_id == SchedulerRun.tenant_id)
                        & (newest.c.started == SchedulerRun.started_at),
                    )
                ).all()
                daily = dict(
                    session.execute(
                        select(SchedulerRun.tenant_id, func.count())
                        .where(SchedulerRun.started_at > now - timedelta(days=1))
                        .group_by(SchedulerRun.tenant_id)
                    ).all()
                )
                events = session.execute(
                    select(WecomEvent.state, func.count()).group_by(WecomEvent.state)
                ).all()
            finally:
                session.rollback()
        last = GaugeMetricFamily(
            "guideapp_scheduler_last_run_age_seconds",
            "Seconds since the scheduler tick last started, per tenant.",
            labels=["tenant"],
        )
        length = GaugeMetricFamily(
            "guideapp_scheduler_last_run_seconds",
            "How long the last finished tick took, per tenant.",
            labels=["tenant"],
        )
        runs = GaugeMetricFamily(
            "guideapp_scheduler_runs_last_day", "Ticks started in the last 24 h.", labels=["tenant"]
        )
        for tenant_id, started, finished in latest:
            last.add_metric([tenant_id], max((now - started).total_seconds(), 0.0))
            if finished is not None:
                length.add_metric([tenant_id], max((finished - started).total_seconds(), 0.0))
            runs.add_metric([tenant_id], daily.get(tenant_id, 0))
        yield from (last, length, runs)
        wecom = GaugeMetricFamily(
            "guideapp_wecom_events", "WeCom callback events by state.", labels=["state"]
        )
        for state, count in events:
            wecom.add_metric([state], count)
        yield wecom
