"""Long work runs as jobs through the real queue (SQLite huey always, Redis when configured):
202 + Location, progress, scoping, cancel, idempotent enqueue, retries, readable failures,
and a worker killed mid-publish whose re-run leaves the database as a clean run would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp import create_app, jobs
from guideapp.changelog.models import ChangeLogEntry
from guideapp.commissions.models import CommissionSettlement, CommissionStatement
from guideapp.config import PROJECT_ROOT
from guideapp.db import make_engine, transaction, utcnow
from guideapp.errors import InvalidInput
from guideapp.demo import load_demo
from guideapp.jobs.models import Job
from guideapp.migrations import alembic_config
from guideapp.org.models import Store
from guideapp.tasks.models import Campaign, Task, TaskTarget
from tests.conftest import (
    FIXTURES,
    GUIDE,
    HQ,
    MANAGER,
    OTHER_GUIDE,
    RIVAL_HQ,
    ApiClient,
    make_config,
)
from tests.databases import backends, scratch_database
from tests.factories import make_rival_tenant
from tests.job_factories import COLLEAGUE, make_job
from tests.queues import queue_backends, queue_url, start_worker

BATCH = 4  # stores per checkpoint in these tests: the demo's 46 open stores take 12 units


@pytest.fixture(params=queue_backends())
def queue_backend(request):
    return request.param


@pytest.fixture
def app(database, connection, queue_backend, tmp_path):
    """The suite's app (one transaction, rolled back) on a queue of each backend."""
    app = create_app(
        make_config(
            database,
            JOBS_URL=queue_url(queue_backend, tmp_path),
            PUBLISH_BATCH_STORES=BATCH,
            JOBS_MAX_ATTEMPTS=3,
            JOBS_RETRY_DELAY_SECONDS=0.05,
        ),
        bind=connection,
    )
    yield app
    queue_of(app).flush()


def queue_of(app):
    return app.extensions["guideapp"]["jobs"]


def run_jobs(app, timeout: float = 30.0) -> None:
    """Work the queue off in this thread (scheduled retries included) until it is empty."""
    queue, deadline = queue_of(app), time.monotonic() + timeout
    while True:
        queue.work_off()
        if queue.pending_count() == 0:
            return
        assert time.monotonic() < deadline, "jobs still queued"
        time.sleep(0.02)


def _campaign(api, title="冬季回访", **overrides) -> str:
    now = utcnow()
    body = {
        "title": title,
        "target": {"all": True},
        "segment": {"stages": ["regular"]},
        "distribution": "auto",
        "starts_at": (now - timedelta(days=1)).isoformat(),
        "due_at": (now + timedelta(days=5)).isoformat(),
        **overrides,
    }
    created = api.post(HQ, "/api/v1/campaigns", json=body)
    assert created.status_code == 201, created.get_json()
    return created.get_json()["id"]


def _fanout(session, campaign_id: str) -> dict:
    """What a publish wrote, without the campaign's id: comparable across campaigns."""
    tasks = session.execute(
        select(Task.store_id, Task.assignee_id, Task.state, Task.title)
        .where(Task.campaign_id == campaign_id)
        .order_by(Task.store_id, Task.assignee_id)
    ).all()
    targets = session.execute(
        select(Task.store_id, Task.assignee_id, TaskTarget.member_id)
        .join(Task, Task.id == TaskTarget.task_id)
        .where(Task.campaign_id == campaign_id)
        .order_by(Task.store_id, Task.assignee_id, TaskTarget.member_id)
    ).all()
    logged = session.execute(
        select(ChangeLogEntry.scope, ChangeLogEntry.table_name, ChangeLogEntry.record_id).where(
            ChangeLogEntry.record_id.like(f"{campaign_id}%")
        )
    ).all()
    log = sorted((s, t, r.removeprefix(campaign_id)) for s, t, r in logged)
    return {"tasks": [tuple(t) for t in tasks], "targets": [tuple(t) for t in targets], "log": log}


# --- 202, Location, progress, result ----------------------------------------------------------


def test_publish_answers_202_with_the_job_and_a_worker_runs_it(api, app, session):
    cid = _campaign(api)
    accepted = api.post(HQ, f"/api/v1/campaigns/{cid}/publish")
    assert accepted.status_code == 202, accepted.get_json()
    job = accepted.get_json()
    assert accepted.headers["Location"] == f"/api/v1/jobs/{job['id']}" == job["url"]
    assert job["state"] == "queued" and job["kind"] == "campaign.publish"
    assert job["progress"] == {"done": 0, "total": 46, "unit": "stores"}
    assert session.get(Campaign, cid).state == "draft"  # nothing done in the request

    run_jobs(app)
    done = api.get(HQ, accepted.headers["Location"]).get_json()
    assert done["state"] == "succeeded", done
    assert done["progress"] == {"done": 46, "total": 46, "unit": "stores"}
    assert done["started_at"] and done["finished_at"] >= done["started_at"] and not done["error"]
    assert done["result"]["state"] == "published" and done["result"]["tasks"] > 0
    assert session.get(Campaign, cid).state == "published"
    assert len(_fanout(session, cid)["tasks"]) == done["result"]["tasks"]
    assert api.post(HQ, f"/api/v1/campaigns/{cid}/publish").status_code == 409


def test_batched_job_and_old_synchronous_publish_write_the_same(api, app, session):
    queued, waited = _campaign(api), _campaign(api)
    api.post(HQ, f"/api/v1/campaigns/{queued}/publish")
    run_jobs(app)
    old = api.post(HQ, f"/api/v1/campaigns/{waited}/publish?wait=true")
    assert old.status_code == 200 and "Location" not in old.headers
    assert set(old.get_json()) == {"campaign_id", "state", "tasks", "targets"}
    assert _fanout(session, queued) == _fanout(session, waited)
    job = session.scalar(select(Job).where(Job.subject == f"campaign:{waited}"))
    assert job.state == "succeeded"  # ?wait=true runs are jobs too, kept as records


def test_settlement_is_a_job_and_closing_again_doubles_nothing(api, app, session):
    first = api.post(HQ, "/api/v1/commissions/settlements", json={"month": "2026-10"})
    assert first.status_code == 202 and first.headers["Location"].startswith("/api/v1/jobs/")
    run_jobs(app)
    job = api.get(HQ, first.headers["Location"]).get_json()
    assert job["state"] == "succeeded" and job["result"]["created"] is True
    assert job["progress"] == {"done": 1, "total": 1, "unit": "months"}
    settlement_id = job["result"]["settlement_id"]
    assert api.get(HQ, f"/api/v1/commissions/settlements/{settlement_id}").status_code == 200
    statements = session.scalar(select(func.count()).select_from(CommissionStatement))

    again = api.post(HQ, "/api/v1/commissions/settlements", json={"month": "2026-10"})
    run_jobs(app)
    rerun = api.get(HQ, again.headers["Location"]).get_json()
    assert rerun["result"] == {**job["result"], "created": False}
    assert session.scalar(select(func.count()).select_from(CommissionSettlement)) == 1
    assert session.scalar(select(func.count()).select_from(CommissionStatement)) == statements


def test_a_month_not_over_is_refused_at_once_and_starts_no_job(api, app, session):
    refused = api.post(HQ, "/api/v1/commissions/settlements", json={"month": "2999-01"})
    assert refused.status_code == 409 and "not ended" in refused.get_json()["message"]
    assert (
        api.post(GUIDE, "/api/v1/commissions/settlements", json={"month": "2026-10"}).status_code
        == 403
    )
    assert session.scalar(select(func.count()).select_from(Job)) == 0
    assert queue_of(app).pending_count() == 0


# --- idempotent enqueue ---------------------------------------------------------------------


def test_the_same_idempotency_key_enqueues_once(api, app, session):
    cid = _campaign(api)
    key = {"Idempotency-Key": f"publish-{cid}"}
    first = api.post(HQ, f"/api/v1/campaigns/{cid}/publish", headers=key)
    second = api.post(HQ, f"/api/v1/campaigns/{cid}/publish", headers=key)
    assert first.status_code == second.status_code == 202
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json()["id"] == first.get_json()["id"]
    assert second.headers["Location"] == first.headers["Location"]
    # Pressed again without a key while it is queued: the same job, not a second one.
    third = api.post(HQ, f"/api/v1/campaigns/{cid}/publish")
    assert third.status_code == 202 and third.get_json()["id"] == first.get_json()["id"]
    assert session.scalar(select(func.count()).select_from(Job)) == 1
    assert queue_of(app).pending_count() == 1
    run_jobs(app)
    assert session.get(Job, first.get_json()["id"]).attempts == 1


def test_a_key_names_one_job_per_starter_even_without_the_request_store(app, session):
    """Cron and scripts start jobs without HTTP: the key is kept on the job itself."""
    queue = queue_of(app)
    first = make_job(session, HQ, idempotency_key="nightly-2026-11", queue=queue)
    again = make_job(session, HQ, idempotency_key="nightly-2026-11", queue=queue)
    other_starter = make_job(session, MANAGER, idempotency_key="nightly-2026-11", queue=queue)
    assert again.id == first.id and other_starter.id != first.id
    assert queue.pending_count() == 2
    with pytest.raises(InvalidInput, match="other work"):
        make_job(session, HQ, kind="test.steps", idempotency_key="nightly-2026-11")


# --- scoping --------------------------------------------------------------------------------


def test_listing_is_scoped_and_keyset_paged(api, app, session):
    made = {
        phone: make_job(session, phone).id
        for phone in (HQ, MANAGER, GUIDE, COLLEAGUE, OTHER_GUIDE, RIVAL_HQ)
    }

    def listed(phone, **query):
        ids, cursor = [], None
        while True:
            args = {"limit": 2, **query, **({"cursor": cursor} if cursor else {})}
            page = api.get(phone, "/api/v1/jobs", query_string=args)
            assert page.status_code == 200, page.get_json()
            body = page.get_json()
            ids += [item["id"] for item in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                return ids

    everyone_of_stride = {made[p] for p in (HQ, MANAGER, GUIDE, COLLEAGUE, OTHER_GUIDE)}
    hq = listed(HQ)
    assert len(hq) == len(set(hq)) and set(hq) == everyone_of_stride
    assert set(listed(MANAGER)) == {made[MANAGER], made[GUIDE], made[COLLEAGUE]}  # SH001's
    assert listed(GUIDE) == [made[GUIDE]]
    assert listed(RIVAL_HQ) == [made[RIVAL_HQ]]
    assert listed(HQ, state="succeeded") == []
    for foreign in (made[COLLEAGUE], made[HQ], made[RIVAL_HQ]):
        missing = api.get(GUIDE, f"/api/v1/jobs/{foreign}")
        assert missing.status_code == 404  # the same answer as a job that never existed
        assert missing.get_json()["message"] == f"Job {foreign} not found."
    assert api.get(GUIDE, "/api/v1/jobs/nope").get_json()["message"] == "Job nope not found."
    assert api.get(HQ, "/api/v1/jobs?state=bogus").status_code == 422


# --- cancel ---------------------------------------------------------------------------------


def test_cancelling_a_queued_job_stops_it_before_it_starts(api, app, session):
    cid = _campaign(api)
    job_url = api.post(HQ, f"/api/v1/campaigns/{cid}/publish").headers["Location"]
    cancelled = api.post(HQ, f"{job_url}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.get_json()["state"] == "cancelled"
    run_jobs(app)
    assert api.get(HQ, job_url).get_json()["state"] == "cancelled"
    assert session.get(Campaign, cid).state == "draft" and _fanout(session, cid)["tasks"] == []
    assert api.post(HQ, f"{job_url}/cancel").status_code == 409


def test_cancelling_a_running_publish_stops_at_a_checkpoint_and_a_rerun_finishes(api, app, session):
    cid, clean = _campaign(api), _campaign(api)
    assert api.post(HQ, f"/api/v1/campaigns/{clean}/publish?wait=true").status_code == 200
    job_url = api.post(HQ, f"/api/v1/campaigns/{cid}/publish").headers["Location"]

    def cancel_after_the_first_unit(ctx):
        if ctx.units == 1:
            answer = api.post(HQ, f"{job_url}/cancel").get_json()
            assert answer["state"] == "running" and answer["cancel_requested"] is True

    jobs.UNIT_HOOKS.append(cancel_after_the_first_unit)
    try:
        run_jobs(app)
    finally:
        jobs.UNIT_HOOKS.remove(cancel_after_the_first_unit)
    stopped = api.get(HQ, job_url).get_json()
    assert stopped["state"] == "cancelled" and stopped["finished_at"]
    assert stopped["progress"]["done"] == BATCH  # one checkpoint, and consistent with it
    first_stores = set(
        session.scalars(
            select(Store.id)
            .where(Store.tenant_id == session.get(Campaign, cid).tenant_id, Store.state == "open")
            .order_by(Store.id)
            .limit(BATCH)
        )
    )
    clean_tasks = _fanout(session, clean)["tasks"]
    assert _fanout(session, cid)["tasks"] == [t for t in clean_tasks if t[0] in first_stores]
    assert session.get(Campaign, cid).state == "draft"

    rerun = api.post(HQ, f"/api/v1/campaigns/{cid}/publish")
    assert rerun.status_code == 202 and rerun.headers["Location"] != job_url
    reached = {store for store, *_ in _fanout(session, cid)["tasks"]}
    assert rerun.get_json()["progress"]["total"] == 46 - len(reached)  # stores still to do
    run_jobs(app)
    assert api.get(HQ, rerun.headers["Location"]).get_json()["state"] == "succeeded"
    assert _fanout(session, cid) == _fanout(session, clean)  # nothing doubled, nothing missed


# --- failures and retries ---------------------------------------------------------------


def test_a_rule_that_says_no_fails_the_job_with_a_message_a_person_can_act_on(api, app, session):
    cid = _campaign(api)
    job_url = api.post(HQ, f"/api/v1/campaigns/{cid}/publish").headers["Location"]
    assert api.post(HQ, f"/api/v1/campaigns/{cid}/cancel").status_code == 200
    run_jobs(app)
    failed = api.get(HQ, job_url).get_json()
    assert failed["state"] == "failed" and failed["attempts"] == 1  # no retry for a rule
    assert failed["error"].startswith("The campaign was cancelled while it was being published")
    assert failed["result"] is None


def test_a_crash_is_logged_server_side_and_reads_plainly_to_the_caller(api, app, session):
    job = make_job(session, HQ, kind="test.broken", queue=queue_of(app))
    run_jobs(app)
    shown = api.get(HQ, f"/api/v1/jobs/{job.id}")
    body = shown.get_json()
    assert body["state"] == "failed" and body["attempts"] == 1
    assert (
        body["error"].startswith("The job failed on our side (KeyError)")
        and job.id in body["error"]
    )
    assert "Traceback" not in shown.get_data(as_text=True) and "error_detail" not in body
    session.expire_all()
    assert "a bug deep down" in session.get(Job, job.id).error_detail  # kept for us


def test_a_lost_database_connection_is_retried_with_backoff(api, app, session):
    job = make_job(session, HQ, kind="test.flaky", params={"failures": 2}, queue=queue_of(app))
    queue = queue_of(app)
    queue.work_off()
    waiting = api.get(HQ, f"/api/v1/jobs/{job.id}").get_json()
    assert waiting["state"] == "queued" and waiting["attempts"] == 1
    assert "database was unreachable" in waiting["error"]
    assert "trying again in 0.05 s (attempt 2 of 3)" in waiting["error"]
    assert queue.huey.scheduled_count() + queue.huey.pending_count() == 1  # later, not now
    run_jobs(app)
    done = api.get(HQ, f"/api/v1/jobs/{job.id}").get_json()
    assert done["state"] == "succeeded" and done["attempts"] == 3 and done["error"] is None
    assert done["result"] == {"attempt": 3}


def test_a_job_that_keeps_failing_stays_listed_as_failed(api, app, session):
    job = make_job(session, HQ, kind="test.flaky", params={"failures": 99}, queue=queue_of(app))
    run_jobs(app)
    failed = api.get(HQ, "/api/v1/jobs?state=failed").get_json()["items"]
    assert [j["id"] for j in failed] == [job.id]
    assert failed[0]["attempts"] == 3
    assert failed[0]["error"].startswith("Gave up after 3 attempts: the database was unreachable")


# --- CLI ------------------------------------------------------------------------------------


def test_cli_settle_runs_the_job_here_or_enqueues_it(app, session):
    runner = app.test_cli_runner()
    queued = runner.invoke(
        args=["commissions", "settle", "--month", "2026-09", "--tenant", "stride", "--enqueue"]
    )
    assert queued.exit_code == 0, queued.output
    assert " queued as job " in queued.output and queue_of(app).pending_count() == 1
    worked = runner.invoke(args=["jobs", "work-off"])
    assert worked.exit_code == 0 and "ran 1 job message(s)" in worked.output, worked.output
    assert session.scalar(select(Job.state).where(Job.subject == "month:2026-09")) == "succeeded"
    here = runner.invoke(args=["commissions", "settle", "--month", "2026-10", "--tenant", "stride"])
    assert here.exit_code == 0, here.output
    assert here.output.startswith("stride: 2026-10 closed: ")
    job = session.scalar(select(Job).where(Job.subject == "month:2026-10"))
    assert job.state == "succeeded" and job.started_by is None


# --- a worker killed mid-job --------------------------------------------------------------


@pytest.fixture(scope="module", params=backends())
def live_database(request, tmp_path_factory):
    """A database whose commits stay (worker processes must see them): demo + rival."""
    with scratch_database(request.param, tmp_path_factory) as url:
        command.upgrade(alembic_config({}, url=url), "head")
        engine = make_engine(url)
        with Session(engine) as session, transaction(session):
            load_demo(session, FIXTURES)
            make_rival_tenant(session)
        engine.dispose()
        yield type("LiveDatabase", (), {"url": url, "backend": request.param})()


def _worker(database, jobs_url: str, name: str, *modules: str) -> subprocess.Popen:
    return start_worker(database.url, jobs_url, name, *modules)


def _wait_for(read, until, timeout: float = 120.0, what: str = "the job"):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if until(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {value}"
        time.sleep(0.05)


def test_a_worker_killed_mid_publish_is_rerun_to_what_a_clean_run_writes(
    live_database, queue_backend, tmp_path
):
    jobs_url, name = queue_url(queue_backend, tmp_path), f"kill-{uuid.uuid4().hex}"
    app = create_app(
        make_config(live_database, JOBS_URL=jobs_url, JOBS_NAME=name, PUBLISH_BATCH_STORES=BATCH)
    )
    api = ApiClient(app.test_client())
    maker = app.extensions["guideapp"]["sessionmaker"]
    killed_cid, clean_cid = _campaign(api, "杀进程"), _campaign(api, "杀进程")
    job_id = api.post(HQ, f"/api/v1/campaigns/{killed_cid}/publish").get_json()["id"]

    def job():
        with maker() as session:
            return session.get(Job, job_id)

    first = _worker(live_database, jobs_url, name, "tests.slow_units")
    try:
        mid = _wait_for(job, lambda j: j.progress_done >= 2 * BATCH, what="two checkpoints")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    killed = job()
    assert killed.state == "running" and 2 * BATCH <= killed.progress_done < 46, (mid, killed)

    # A deploy: the next worker is stopped gracefully (SIGTERM) mid-job; the job pauses at
    # its next checkpoint and goes back on the queue, without using up an attempt.
    second = _worker(live_database, jobs_url, name, "tests.slow_units")
    try:
        _wait_for(
            job,
            lambda j: j.state == "running" and j.progress_done > killed.progress_done,
            what="the re-run to pass a checkpoint",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        _, errors = second.communicate(timeout=60)
    assert second.returncode == 0, errors.decode()[-2000:]
    paused = job()
    assert paused.state == "queued" and paused.progress_done < 46, paused.error

    third = _worker(live_database, jobs_url, name)
    try:
        finished = _wait_for(job, lambda j: j.state in ("succeeded", "failed", "cancelled"))
    finally:
        third.send_signal(signal.SIGTERM)
        _, errors = third.communicate(timeout=60)
    assert third.returncode == 0, errors.decode()[-2000:]
    assert finished.state == "succeeded", finished.error
    assert finished.progress_done == 46
    assert finished.attempts == paused.attempts + 1

    clean = api.post(HQ, f"/api/v1/campaigns/{clean_cid}/publish?wait=true").get_json()
    assert {k: finished.result[k] for k in ("tasks", "targets")} == {
        k: clean[k] for k in ("tasks", "targets")
    }
    with maker() as session:
        assert _fanout(session, killed_cid) == _fanout(session, clean_cid)
        assert session.get(Campaign, killed_cid).state == "published"
    queue_of(app).flush()
    engine = app.extensions["guideapp"]["engine"]
    engine.dispose()


# --- make run: one command, both processes --------------------------------------------------


def test_the_supervisor_stops_every_process_when_one_stops_or_it_is_told_to(tmp_path):
    sleeper = f"{sys.executable} -c 'import time; time.sleep(60)'"
    quitter = f"{sys.executable} -c 'import sys; sys.exit(3)'"
    script = [sys.executable, str(PROJECT_ROOT / "scripts" / "supervise.py")]

    ended = subprocess.run([*script, sleeper, quitter], timeout=60, capture_output=True)
    assert ended.returncode == 3  # the worker died: the server was stopped too

    told = subprocess.Popen([*script, sleeper, sleeper], start_new_session=True)
    time.sleep(1.0)
    children = _children(told.pid)
    assert len(children) == 2
    told.send_signal(signal.SIGTERM)
    assert told.wait(timeout=60) == 0
    for pid in children:
        _wait_for(lambda p=pid: _alive(p), lambda alive: not alive, 10, "children to stop")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"  # a zombie has stopped
    except FileNotFoundError:
        return False
