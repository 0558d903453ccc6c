"""The jobs' figures for Prometheus: jobs by kind and state, the queue's depth, the oldest
queued job's age. Read at scrape time (one grouped query and the queue's counts), so every
gunicorn worker answers the same numbers and nothing is kept between scrapes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from guideapp.db import utcnow
from guideapp.jobs.kinds import KINDS
from guideapp.jobs.models import STATES, Job

log = logging.getLogger("guideapp.jobs")


@dataclass
class Figures:
    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, state) -> count
    oldest_queued_seconds: float = 0.0  # 0 when nothing is queued
    pending: int | None = None  # messages due now; None: the queue did not answer
    scheduled: int | None = None  # retries waiting for their time
    backend: str = ""
    queue: str = ""


def read_figures(session, queue, *, now: datetime | None = None) -> Figures:
    """Every kind registered here shows every state (0 included), so a rule on a series
    that has not happened yet still has something to watch."""
    now = now or utcnow()
    rows = session.execute(
        select(Job.kind, Job.state, func.count(), func.min(Job.created_at)).group_by(
            Job.kind, Job.state
        )
    ).all()
    figures = Figures(backend=queue.backend, queue=queue.name)
    figures.jobs = {(kind, state): 0 for kind in KINDS for state in STATES}
    oldest = None
    for kind, state, count, first in rows:
        figures.jobs[(kind, state)] = count
        if state == "queued" and first is not None:
            oldest = first if oldest is None else min(oldest, first)
    if oldest is not None:
        figures.oldest_queued_seconds = max((now - oldest).total_seconds(), 0.0)
    try:
        figures.pending = queue.huey.pending_count()
        figures.scheduled = queue.huey.scheduled_count()
    except Exception as error:  # Redis away: the table's figures still count
        log.warning("job queue unreachable for metrics: %s", error)
    return figures


class JobsCollector(Collector):
    """A prometheus_client collector over the jobs table and the queue of one app."""

    def __init__(self, sessionmaker, queue):
        self.sessionmaker, self.queue = sessionmaker, queue

    def collect(self):
        with self.sessionmaker() as session:
            try:
                figures = read_figures(session, self.queue)
            finally:
                session.rollback()
        jobs = GaugeMetricFamily(
            "guideapp_jobs", "Jobs in the jobs table by kind and state.", labels=["kind", "state"]
        )
        for (kind, state), count in sorted(figures.jobs.items()):
            jobs.add_metric([kind, state], count)
        yield jobs
        yield GaugeMetricFamily(
            "guideapp_jobs_oldest_queued_age_seconds",
            "Seconds since the oldest job still queued was created (0: none queued).",
            value=figures.oldest_queued_seconds,
        )
        labels = ["backend", "queue"]
        up = GaugeMetricFamily(
            "guideapp_jobs_queue_up", "1 when the job queue answered this scrape.", labels=labels
        )
        up.add_metric([figures.backend, figures.queue], 0 if figures.pending is None else 1)
        yield up
        if figures.pending is not None:
            depth = GaugeMetricFamily(
                "guideapp_jobs_queue_depth",
                "Messages in the job queue: pending (due now) or scheduled (retries later).",
                labels=[*labels, "state"],
            )
            depth.add_metric([figures.backend, figures.queue, "pending"], figures.pending)
            depth.add_metric([figures.backend, figures.queue, "scheduled"], figures.scheduled or 0)
            yield depth
