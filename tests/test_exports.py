"""Exports as jobs: 202 and Location, the file written by a worker through the real queue,
downloaded from the job (scoped like it), equal to the synchronous export."""

from __future__ import annotations

import io
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from guideapp import create_app
from guideapp.jobs.models import Job
from tests.commission_factories import recruit
from tests.conftest import GUIDE, HQ, MANAGER, RIVAL_HQ, make_config
from tests.factories import staff_by_phone
from tests.queues import queue_backends, queue_url

OCT = datetime(2026, 10, 15, 12, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture(params=queue_backends())
def app(request, database, connection, tmp_path):
    app = create_app(
        make_config(
            database, JOBS_URL=queue_url(request.param, tmp_path), UPLOAD_DIR=str(tmp_path / "up")
        ),
        bind=connection,
    )
    yield app
    app.extensions["guideapp"]["jobs"].flush()


def run_jobs(app, timeout: float = 30.0) -> None:
    queue, deadline = app.extensions["guideapp"]["jobs"], time.monotonic() + timeout
    while True:
        queue.work_off()
        if queue.pending_count() == 0:
            return
        assert time.monotonic() < deadline, "jobs still queued"
        time.sleep(0.02)


def _settled(api, session) -> str:
    guide, colleague = staff_by_phone(session, GUIDE), staff_by_phone(session, "13913775684")
    guide.name = '=HYPERLINK("http://evil.example","点我")'  # neutralised in both ways
    for i, who in enumerate((guide, guide, colleague)):
        recruit(session, who, at=OCT + timedelta(hours=i), name=f"十月会员{i}")
    closed = api.post(HQ, "/api/v1/commissions/settlements?wait=true", json={"month": "2026-10"})
    assert closed.status_code == 201, closed.get_json()
    return f"/api/v1/commissions/settlements/{closed.get_json()['id']}"


def _export(api, url: str, fmt: str, level: str = "guide", who: str = HQ, **headers):
    return api.post(who, f"{url}/exports", json={"format": fmt, "level": level}, headers=headers)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_export_job_writes_the_file_the_synchronous_export_sends(api, app, session, fmt):
    url = _settled(api, session)
    accepted = _export(api, url, fmt)
    assert accepted.status_code == 202, accepted.get_json()
    job = accepted.get_json()
    assert accepted.headers["Location"] == job["url"] == f"/api/v1/jobs/{job['id']}"
    assert job["kind"] == "commissions.export" and job["state"] == "queued"
    assert job["progress"] == {"done": 0, "total": 2, "unit": "rows"}  # two guides earned
    download = f"/api/v1/jobs/{job['id']}/download"
    early = api.get(HQ, download)
    assert early.status_code == 409 and "once it has succeeded" in early.get_json()["message"]

    run_jobs(app)
    done = api.get(HQ, job["url"]).get_json()
    assert done["state"] == "succeeded", done
    assert done["progress"] == {"done": 2, "total": 2, "unit": "rows"}
    result = done["result"]
    title = f"佣金结算-2026-10-导购.{fmt}"
    assert result["download_url"] == download and result["filename"] == title
    assert result["rows"] == 2 and "key" not in result

    sent = api.get(HQ, download)
    assert sent.status_code == 200
    assert sent.headers["Content-Type"].startswith(result["content_type"])
    assert sent.headers["X-Content-Type-Options"] == "nosniff"
    disposition = sent.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="commissions-2026-10-guide.')
    assert f"filename*=UTF-8''{quote(title)}" in disposition  # RFC 5987 for the Chinese
    assert int(sent.headers["Content-Length"]) == result["size"] == len(sent.data)

    old = api.get(HQ, f"{url}/export?format={fmt}&level=guide")
    assert old.status_code == 200
    if fmt == "csv":
        assert sent.data == old.data
        assert sent.data.decode("utf-8-sig").count("'=HYPERLINK") == 1
    else:  # a workbook's zip carries its creation time: compare what it shows
        assert _cells(sent.data) == _cells(old.data)
        assert _cells(sent.data)[-1][0] == "合计"


def _exports(session) -> int:
    return session.scalar(
        select(func.count()).select_from(Job).where(Job.kind == "commissions.export")
    )


def _cells(data: bytes) -> list[tuple]:
    sheet = load_workbook(io.BytesIO(data)).active
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


def test_the_same_key_or_the_same_export_under_way_is_one_job(api, app, session):
    url = _settled(api, session)
    first = _export(api, url, "csv", **{"Idempotency-Key": "export-oct"})
    replay = _export(api, url, "csv", **{"Idempotency-Key": "export-oct"})
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Location"] == first.headers["Location"]
    pressed_again = _export(api, url, "csv")
    assert pressed_again.get_json()["id"] == first.get_json()["id"]
    other = _export(api, url, "csv", level="store")
    assert other.get_json()["id"] != first.get_json()["id"]
    assert _exports(session) == 2


def test_bad_input_and_other_roles_are_refused_before_any_job(api, app, session):
    url = _settled(api, session)
    bad = api.post(HQ, f"{url}/exports", json={"format": "pdf"})
    assert bad.status_code == 422 and "format" in str(bad.get_json()["errors"])
    assert api.post(HQ, f"{url}/exports", json={}).status_code == 422
    assert api.post(HQ, f"{url}/exports", json={"format": "csv", "x": 1}).status_code == 422
    for who in (MANAGER, GUIDE, RIVAL_HQ):  # settlements are HQ's: the same 404 as none
        assert _export(api, url, "csv", who=who).status_code == 404
    assert _export(api, "/api/v1/commissions/settlements/nope", "csv").status_code == 404
    assert _exports(session) == 0


def test_the_job_and_its_file_are_not_found_outside_the_job_scope(api, app, session):
    url = _settled(api, session)
    job = _export(api, url, "xlsx").get_json()
    run_jobs(app)
    for who in (MANAGER, GUIDE, RIVAL_HQ):
        for path in (job["url"], f"{job['url']}/download"):
            answer = api.get(who, path)
            assert answer.status_code == 404, (who, path)
            assert answer.get_json()["message"] == f"Job {job['id']} not found."
    missing = api.get(HQ, "/api/v1/jobs/nope/download")
    assert missing.status_code == 404 and missing.get_json()["message"] == "Job nope not found."
    assert api.get(HQ, f"{job['url']}/download?x=1").status_code == 422


def test_a_failed_export_says_why_and_has_nothing_to_download(api, app, session):
    url = _settled(api, session)
    job = _export(api, url, "csv").get_json()
    staff_by_phone(session, HQ).state = "left"  # left before the worker ran the export
    session.flush()
    run_jobs(app)
    staff_by_phone(session, HQ).state = "active"
    session.flush()
    failed = api.get(HQ, job["url"]).get_json()
    assert failed["state"] == "failed" and failed["attempts"] == 1  # a rule: no retry
    assert failed["error"] == (
        "The person who asked for this export no longer works here; "
        "ask someone at HQ to export the month again."
    )
    refused = api.get(HQ, f"{job['url']}/download")
    assert refused.status_code == 409 and "is failed" in refused.get_json()["message"]


def test_a_job_without_a_file_or_a_file_gone_is_a_404_that_says_so(api, app, session, tmp_path):
    url = _settled(api, session)
    job = _export(api, url, "csv").get_json()
    run_jobs(app)
    for stored in (tmp_path / "up").rglob("*.csv"):
        stored.unlink()
    gone = api.get(HQ, f"{job['url']}/download")
    assert gone.status_code == 404 and "no longer stored" in gone.get_json()["message"]
    month = api.post(HQ, "/api/v1/commissions/settlements", json={"month": "2026-09"})
    run_jobs(app)
    no_file = api.get(HQ, f"{month.headers['Location']}/download")
    assert no_file.status_code == 404 and "no file to download" in no_file.get_json()["message"]
