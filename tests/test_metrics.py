"""GET /metrics (Prometheus text) and `jobs stats`: jobs by kind and state, queue depth on
both queue backends, the oldest queued job's age; who may scrape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from guideapp import create_app
from guideapp.db import utcnow
from tests.conftest import GUIDE, HQ, RIVAL_HQ, make_config
from tests.job_factories import make_job
from tests.queues import queue_backends, queue_url

TOKEN = "scrape-me-0123456789"


@pytest.fixture(params=queue_backends())
def queue_backend(request):
    return request.param


def _app(database, connection, tmp_path, queue_backend="sqlite", **config):
    return create_app(
        make_config(database, JOBS_URL=queue_url(queue_backend, tmp_path), **config),
        bind=connection,
    )


@pytest.fixture
def app(database, connection, tmp_path, queue_backend):
    app = _app(database, connection, tmp_path, queue_backend)
    yield app
    app.extensions["guideapp"]["jobs"].flush()


def _samples(response) -> dict:
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def _jobs(samples, kind, state):
    return samples[("guideapp_jobs", (("kind", kind), ("state", state)))]


def test_metrics_count_jobs_by_kind_and_state_and_the_queue_as_it_is(app, session):
    queue = app.extensions["guideapp"]["jobs"]
    client = app.test_client()
    empty = _samples(client.get("/metrics"))
    assert _jobs(empty, "test.noop", "queued") == 0  # every kind shows every state
    assert _jobs(empty, "commissions.export", "failed") == 0
    assert empty[("guideapp_jobs_oldest_queued_age_seconds", ())] == 0

    done = [make_job(session, who, queue=queue) for who in (HQ, GUIDE, RIVAL_HQ)]
    make_job(session, HQ, kind="test.broken", queue=queue)
    waiting = [make_job(session, HQ) for _ in range(2)]
    queue.enqueue(waiting[1].id, delay=3600)  # a retry due in an hour
    queue.work_off()  # runs what is due; the retry goes to the schedule
    for job in waiting:
        queue.enqueue(job.id)
    waiting[0].created_at = utcnow() - timedelta(hours=1)
    session.flush()

    samples = _samples(client.get("/metrics"))
    assert _jobs(samples, "test.noop", "succeeded") == len(done)  # every tenant: an operator's
    assert _jobs(samples, "test.noop", "queued") == 2
    assert _jobs(samples, "test.broken", "failed") == 1
    assert _jobs(samples, "test.noop", "running") == 0
    backend = (("backend", queue.backend), ("queue", queue.name))
    assert samples[("guideapp_jobs_queue_up", backend)] == 1
    assert samples[("guideapp_jobs_queue_depth", (*backend, ("state", "pending")))] == 2
    assert samples[("guideapp_jobs_queue_depth", (*backend, ("state", "scheduled")))] == 1
    oldest = samples[("guideapp_jobs_oldest_queued_age_seconds", ())]
    assert 3590 < oldest < 3700


def test_jobs_stats_prints_the_same_figures(app, session):
    queue = app.extensions["guideapp"]["jobs"]
    make_job(session, HQ, kind="test.broken", queue=queue)
    queue.work_off()
    make_job(session, HQ, queue=queue)
    result = app.test_cli_runner().invoke(args=["jobs", "stats"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"queue: {queue.backend} '{queue.name}'"
    assert lines[1].split() == ["pending", "1", "scheduled", "0"]
    assert lines[3].split() == ["kind", "queued", "running", "succeeded", "failed", "cancelled"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[4:]}
    assert rows["test.broken"] == ["0", "0", "0", "1", "0"]
    assert rows["test.noop"] == ["1", "0", "0", "0", "0"]


def test_a_queue_that_does_not_answer_is_reported_and_the_jobs_still_counted(
    database, connection, tmp_path, session
):
    app = create_app(
        make_config(database, JOBS_URL="redis://127.0.0.1:1/0"), bind=connection
    )  # nothing listens on port 1
    make_job(session, HQ)
    samples = _samples(app.test_client().get("/metrics"))
    queue = app.extensions["guideapp"]["jobs"]
    assert samples[("guideapp_jobs_queue_up", (("backend", "redis"), ("queue", queue.name)))] == 0
    assert not any(name == "guideapp_jobs_queue_depth" for name, _ in samples)
    assert _jobs(samples, "test.noop", "queued") == 1
    stats = app.test_cli_runner().invoke(args=["jobs", "stats"])
    assert stats.exit_code == 0 and "unreachable" in stats.output


def test_without_a_token_only_a_scraper_on_this_machine_is_answered(database, connection, tmp_path):
    client = _app(database, connection, tmp_path).test_client()
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert outside.status_code == 403
    assert "GUIDEAPP_METRICS_TOKEN" in outside.get_json()["message"]
    relayed = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status_code == 403  # a proxy on this machine relays the outside
    assert b"guideapp_jobs" not in outside.data + relayed.data


def test_with_a_token_only_its_bearer_is_answered(database, connection, tmp_path):
    client = _app(database, connection, tmp_path, METRICS_TOKEN=TOKEN).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = client.get("/metrics", headers=headers)  # loopback needs it too
        assert refused.status_code == 401, headers
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"guideapp_jobs" not in refused.data
    allowed = client.get(
        "/metrics",
        headers={"Authorization": f"Bearer {TOKEN}"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert "guideapp_jobs" in allowed.get_data(as_text=True)
    unknown = client.get("/metrics?name[]=x", headers={"Authorization": f"Bearer {TOKEN}"})
    assert unknown.status_code == 422 and "name[]" in unknown.get_json()["errors"]


def test_requests_scheduler_and_wecom_figures(app, session, api):
    from guideapp.tasks.scheduler import tick
    from tests.factories import staff_by_phone

    before = _samples(app.test_client().get("/metrics"))
    key = ("method", "GET"), ("endpoint", "/api/v1/me"), ("status", "200")
    count = ("guideapp_http_request_duration_seconds_count", tuple(sorted(key)))
    for _ in range(3):
        assert api.get(GUIDE, "/api/v1/me").status_code == 200
    api.client.get("/no/such/page")
    pulled = api.get(GUIDE, "/api/v1/sync/pull?last_pulled_at=1&schema_version=2")
    assert pulled.status_code == 200
    tenant_id = staff_by_phone(session, HQ).tenant_id
    tick(session, tenant_id=tenant_id, now=utcnow() - timedelta(minutes=5))
    after = _samples(app.test_client().get("/metrics"))
    assert after[count] - before.get(count, 0) == 3
    unmatched = (("endpoint", "unmatched"), ("method", "GET"), ("status", "404"))
    assert after[("guideapp_http_request_duration_seconds_count", unmatched)] >= 1
    age = after[("guideapp_scheduler_last_run_age_seconds", (("tenant", tenant_id),))]
    assert 290 <= age < 3600
    assert after[("guideapp_scheduler_runs_last_day", (("tenant", tenant_id),))] >= 1
    assert ("guideapp_db_connections_in_use", ()) in after
    lag = ("guideapp_sync_pull_changes_behind_count", ())
    assert after[lag] - before.get(lag, 0) == 1


def test_gunicorn_workers_are_summed_in_one_scrape(database, tmp_path):
    """Two gunicorn workers, many requests: any worker's /metrics counts them all."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from prometheus_client.parser import text_string_to_metric_families

    root = Path(__file__).resolve().parent.parent
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "GUIDEAPP_DATABASE_URL": database.url,
        "GUIDEAPP_JOBS_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "GUIDEAPP_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "gunicorn.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(root / "gunicorn.conf.py")]
        + ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--chdir", str(root), "wsgi:app"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # Up to two minutes: under a loaded CI machine two workers take a while to boot.
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=10).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not come up:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        for _ in range(40):  # new connections: the master spreads them over both workers
            urllib.request.urlopen(f"{url}/healthz").read()
        text = urllib.request.urlopen(f"{url}/metrics").read().decode()
    finally:
        server.terminate()
        server.wait(20)
    counted = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "guideapp_http_request_duration_seconds_count"
        and sample.labels.get("endpoint") == "/healthz"
    )
    assert counted >= 41
