"""Imports run as jobs through the real queue: 202 + Location, the report as the job's
result, in-file repeats found across batches, cancel at a batch, the CLI's plain progress
lines, and a worker killed mid-import whose re-run leaves what a clean run leaves."""

from __future__ import annotations

import io
import os
import signal
import tracemalloc
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guideapp import create_app
from guideapp.changelog.models import ChangeLogEntry
from guideapp.commissions.models import CommissionEntry, CommissionRecruit
from guideapp.config import PROJECT_ROOT
from guideapp.db import make_engine, transaction, utcnow
from guideapp.demo import load_demo
from guideapp.jobs.models import Job
from guideapp.members.imports import REPORT_LIMIT, run_import
from guideapp.members.models import ImportKey, Member, Order
from guideapp.migrations import alembic_config
from guideapp.org.models import Staff, Store, Tenant
from tests.conftest import FIXTURES, HQ, ApiClient, make_config
from tests.databases import backends, scratch_database
from tests.queues import queue_backends, queue_url, start_worker
from tests.test_jobs import _wait_for, queue_of, run_jobs

BATCH = 2  # rows per checkpoint in these tests
MEMBERS_CSV = (PROJECT_ROOT / "fixtures" / "imports" / "members.csv").read_bytes()


@pytest.fixture(params=queue_backends())
def queue_backend(request):
    return request.param


@pytest.fixture
def app(database, connection, queue_backend, tmp_path):
    app = create_app(
        make_config(
            database,
            JOBS_URL=queue_url(queue_backend, tmp_path),
            IMPORT_BATCH_ROWS=BATCH,
            UPLOAD_DIR=str(tmp_path / "uploads"),
        ),
        bind=connection,
    )
    yield app
    queue_of(app).flush()


def upload(api, kind, content, filename="import.csv", query="", headers=None):
    return api.client.post(
        f"/api/v1/imports/{kind}{query}",
        data={"file": (io.BytesIO(content), filename)},
        headers={**api.headers(HQ), **(headers or {})},
        content_type="multipart/form-data",
    )


def job_of(session, job_id) -> Job:
    session.expire_all()
    return session.get_one(Job, job_id)


def test_an_import_answers_202_and_its_job_reports_every_row(api, app, session):
    accepted = upload(api, "members", MEMBERS_CSV, "members.csv")
    assert accepted.status_code == 202, accepted.get_json()
    body = accepted.get_json()
    assert accepted.headers["Location"] == f"/api/v1/jobs/{body['id']}"
    assert body["kind"] == "members.import" and body["state"] == "queued"
    assert body["progress"] == {"done": 0, "total": 9, "unit": "rows"}
    run_jobs(app)
    job = api.get(HQ, f"/api/v1/jobs/{body['id']}").get_json()
    assert job["state"] == "succeeded", job["error"]
    assert job["progress"] == {"done": 9, "total": 9, "unit": "rows"}
    report = job["result"]
    assert {k: report[k] for k in ("rows", "imported", "updated", "failed")} == {
        "rows": 9,
        "imported": 3,
        "updated": 1,
        "failed": 5,
    }
    assert report["errors_total"] == len(report["errors"])
    # the keys kept for repeats are gone with the job's end
    assert session.scalar(select(func.count()).select_from(ImportKey)) == 0


def test_batched_job_and_one_transaction_import_report_the_same(api, app, session):
    """Repeats across batches (rows 2 and 5 share a phone, 3 and 6 a unionid, 4 and 7 the
    member an earlier row changed) are reported as in a single pass."""
    lines = [
        "手机号,姓名,unionid",
        "13700000001,甲,",
        "13700000002,乙,oRepeat01",
        "18524949613,丙,",  # an existing member, by phone
        "13700000001,甲2,",
        "13700000003,丁,oRepeat01",
        "18524949613,丙2,",
        "13700000004,戊,",
    ]
    content = ("\n".join(lines) + "\n").encode()
    tenant_id = session.scalar(select(Tenant.id).where(Tenant.slug == "stride"))
    savepoint = session.begin_nested()
    single = run_import(
        session,
        tenant_id=tenant_id,
        kind="members",
        filename="m.csv",
        content=content,
        dry_run=True,
    )
    savepoint.rollback()
    accepted = upload(api, "members", content, query="?dry_run=true")
    assert accepted.status_code == 202, accepted.get_json()
    run_jobs(app)
    job = job_of(session, accepted.get_json()["id"])
    assert job.state == "succeeded", job.error
    assert job.result == single
    assert {(e["row"], e["field"]) for e in single["errors"]} >= {(5, "phone"), (6, "unionid")}


def test_a_file_without_the_required_columns_is_refused_at_once_and_starts_no_job(
    api, app, session
):
    jobs_before = session.scalar(select(func.count()).select_from(Job))
    refused = upload(api, "members", "姓名\n张三\n".encode())
    assert refused.status_code == 422, refused.get_json()
    assert "Missing required columns" in refused.get_json()["message"]
    gbk_broken = upload(api, "members", "手机号,姓名\n".encode() + b"\xff\xfe\xfa\n")
    assert gbk_broken.status_code == 422, gbk_broken.get_json()
    assert session.scalar(select(func.count()).select_from(Job)) == jobs_before


def test_the_same_idempotency_key_starts_one_import(api, app, session):
    """A retry sends the same bytes (one multipart boundary), as a client's retry does."""
    boundary = "retry-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + MEMBERS_CSV
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {**api.headers(HQ), "Idempotency-Key": f"imp-{uuid.uuid4().hex}"}

    def post():
        return api.client.post(
            "/api/v1/imports/members",
            data=body,
            headers=headers,
            content_type=f"multipart/form-data; boundary={boundary}",
        )

    first, again = post(), post()
    assert first.status_code == again.status_code == 202
    assert first.get_json()["id"] == again.get_json()["id"]
    assert queue_of(app).pending_count() == 1


def _multipart(boundary: str, content: bytes, filename: str = "m.csv") -> tuple[bytes, str]:
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
            "\r\nContent-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_retry_with_another_boundary_replays_and_another_file_is_refused(api, app, session):
    """An upload's Idempotency-Key compares the parts (the file's bytes, its name and type,
    the query), not the raw body: a retry built afresh by the client replays."""
    headers = {**api.headers(HQ), "Idempotency-Key": f"imp-{uuid.uuid4().hex}"}

    def post(boundary, content=MEMBERS_CSV, query="", filename="m.csv"):
        body, content_type = _multipart(boundary, content, filename)
        return api.client.post(
            f"/api/v1/imports/members{query}",
            data=body,
            headers=headers,
            content_type=content_type,
        )

    first, again = post("first-try"), post("second-try-with-another-boundary")
    assert first.status_code == again.status_code == 202, again.get_json()
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    other_file = MEMBERS_CSV.replace(b"\n", b"\r\n")  # one byte apart is another file
    for refused in (
        post("third", content=other_file),
        post("fourth", filename="other-name.csv"),
        post("fifth", query="?dry_run=true"),
    ):
        assert refused.status_code == 422, refused.get_json()
        assert "Idempotency-Key" in refused.get_json()["errors"]
    assert session.scalar(select(func.count()).select_from(Job)) == 1
    assert queue_of(app).pending_count() == 1


def test_an_upload_with_an_idempotency_key_is_hashed_from_disk_not_held_in_memory(api, app):
    """A 16 MB upload: Werkzeug spools the file to disk as it parses, the key's fingerprint
    reads it from there in chunks; nothing holds the body whole (request.get_data() did)."""
    filler = "x" * 100_000  # an extra column, ignored: a big file of few rows
    lines = ["手机号,姓名,备注"] + [f"137{n:08d},会员{n},{filler}" for n in range(160)]
    body, content_type = _multipart("big", ("\n".join(lines) + "\n").encode())
    headers = {**api.headers(HQ), "Idempotency-Key": f"big-{uuid.uuid4().hex}"}
    tracemalloc.start()
    try:
        accepted = api.client.post(
            "/api/v1/imports/members", data=body, headers=headers, content_type=content_type
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert accepted.status_code == 202, accepted.get_json()
    # ~4 MB: the import's own 1 MB read chunks (encoding check, storage); 31 MB before
    assert peak < len(body) / 2, (
        f"{peak / 2**20:.1f} MB in memory for a {len(body) / 2**20:.0f} MB upload"
    )


def test_the_report_lists_the_first_errors_and_counts_them_all(api, app, session):
    rows = REPORT_LIMIT + 50
    content = ("手机号\n" + "\n".join("12345" for _ in range(rows)) + "\n").encode()
    app.config["IMPORT_BATCH_ROWS"] = 400
    response = upload(api, "members", content, query="?wait=true")
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["failed"] == report["rows"] == report["errors_total"] == rows
    assert len(report["errors"]) == REPORT_LIMIT
    assert [e["row"] for e in report["errors"]] == list(range(2, REPORT_LIMIT + 2))


def test_cancel_stops_at_the_next_batch_and_keeps_the_finished_ones(api, app, session):
    phones = [f"1370000{n:04d}" for n in range(10)]
    content = ("手机号\n" + "\n".join(phones) + "\n").encode()
    job_id = upload(api, "members", content).get_json()["id"]
    maker = app.extensions["guideapp"]["sessionmaker"]
    runner = queue_of(app).runner

    def cancel_after_the_second_batch(ctx):
        if ctx.units == 3:  # the opening unit, then two batches
            with maker() as other, transaction(other):
                other.get_one(Job, job_id).cancel_requested = True

    runner.on_unit = cancel_after_the_second_batch
    try:
        run_jobs(app)
    finally:
        runner.on_unit = None
    job = job_of(session, job_id)
    assert job.state == "cancelled" and job.progress_done == 2 * BATCH
    imported = session.scalars(select(Member.phone).where(Member.phone.in_(phones))).all()
    assert sorted(imported) == phones[: 2 * BATCH]


def test_cli_import_runs_the_job_with_plain_progress_lines_or_enqueues_it(app, session, tmp_path):
    file = tmp_path / "members.csv"
    file.write_bytes(("手机号\n" + "\n".join(f"1370001{n:04d}" for n in range(5)) + "\n").encode())
    runner = app.test_cli_runner()
    here = runner.invoke(args=["import", "members", str(file)])
    assert here.exit_code == 0, here.output
    lines = here.output.splitlines()
    assert "members import of members.csv: 5/5 rows" in lines, here.output
    assert "  rows 5  imported 5  updated 0  unchanged 0  failed 0" in lines
    job = session.scalar(select(Job).where(Job.kind == "members.import"))
    assert job.state == "succeeded" and job.result["imported"] == 5 and job.started_by is None
    queued = runner.invoke(args=["import", "members", str(file), "--enqueue"])
    assert queued.exit_code == 0, queued.output
    assert " queued as job " in queued.output and queue_of(app).pending_count() == 1


# --- a worker killed mid-import -----------------------------------------------------------


def _live(backend, tmp_path_factory):
    with scratch_database(backend, tmp_path_factory) as url:
        command.upgrade(alembic_config({}, url=url), "head")
        engine = make_engine(url)
        with Session(engine) as session, transaction(session):
            load_demo(session, FIXTURES)
        engine.dispose()
        yield type("LiveDatabase", (), {"url": url, "backend": backend})()


@pytest.fixture(scope="module", params=backends())
def live_pair(request, tmp_path_factory):
    """Two databases whose commits stay: one for the killed run, one for the clean run."""
    killed, clean = _live(request.param, tmp_path_factory), _live(request.param, tmp_path_factory)
    yield next(killed), next(clean)
    for generator in (killed, clean):
        next(generator, None)


_RUNS = iter(range(20))  # the databases serve every queue backend: each run its own rows


def _orders_file(session) -> bytes:
    """Orders of the demo's bound members (they earn commission) and of new buyers (members
    created), a refund, and a repeat across batches."""
    bound = session.scalars(
        select(Member.phone).where(Member.guide_id.is_not(None)).order_by(Member.phone).limit(12)
    ).all()
    at = (utcnow() - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    run = next(_RUNS)
    rows = [
        f"pos,K{run}-{n},{100 + n}.50,{at},{phone},{'20' if n % 5 == 0 else ''}"
        for n, phone in enumerate(bound)
    ]
    rows += [f"tmall,N{run}-{n},88,{at},139{run}000{n:04d}," for n in range(10)]
    rows.append(f"pos,K{run}-1,101.50,{at},{bound[1]},")  # repeats row 3
    return (
        "channel,order_no,amount,ordered_at,phone,refund_amount\n" + "\n".join(rows) + "\n"
    ).encode()


def _members_file(session) -> bytes:
    """New members, most of them with a guide (recruits: bounties, a tier step maybe), and a
    repeat across batches."""
    guides = session.scalars(
        select(Staff.phone).where(Staff.role == "guide").order_by(Staff.phone).limit(3)
    ).all()
    run = next(_RUNS)
    rows = [f"138{run}111{n:04d},新客{n},{guides[n % 3] if n % 4 != 3 else ''}" for n in range(22)]
    rows.append(f"138{run}1110001,重复,{guides[0]}")  # repeats row 3
    return ("手机号,姓名,导购手机号\n" + "\n".join(rows) + "\n").encode()


FILES = {"orders": _orders_file, "members": _members_file}


def _worker(database, jobs_url, name, uploads, *modules):
    return start_worker(database.url, jobs_url, name, *modules, UPLOAD_DIR=uploads)


def _written(session) -> dict:
    """What the import wrote, named by phones, order numbers and codes (ids differ)."""
    names = dict(session.execute(select(Staff.id, Staff.phone)).all())
    names |= {i: f"store {c}" for i, c in session.execute(select(Store.id, Store.code))}
    names |= {i: f"tenant {s}" for i, s in session.execute(select(Tenant.id, Tenant.slug))}
    names |= {i: p or "?" for i, p in session.execute(select(Member.id, Member.phone))}
    names |= {i: f"order {n}" for i, n in session.execute(select(Order.id, Order.order_no))}

    def named(value):
        if value is None:
            return None
        kind, _, rest = value.partition(":")
        return f"{kind}:{names.get(rest, rest)}" if rest else names.get(value, value)

    members = session.execute(
        select(Member.phone, Member.name, Member.stage, Member.guide_id, Member.store_id)
    ).all()
    orders = session.execute(
        select(
            Order.channel,
            Order.order_no,
            Order.amount_fen,
            Order.refunded_fen,
            Order.member_id,
            Order.guide_id,
        )
    ).all()
    entries = session.execute(
        select(
            CommissionEntry.kind,
            CommissionEntry.source_type,
            CommissionEntry.amount_fen,
            CommissionEntry.accounting_month,
            CommissionEntry.guide_id,
            CommissionEntry.member_id,
        )
    ).all()
    recruits = session.execute(
        select(
            CommissionRecruit.member_id,
            CommissionRecruit.guide_id,
            CommissionRecruit.state,
            CommissionRecruit.source,
        )
    ).all()
    log = session.execute(
        select(ChangeLogEntry.scope, ChangeLogEntry.table_name, ChangeLogEntry.record_id).where(
            ChangeLogEntry.table_name.in_(("members", "orders"))
        )
    ).all()
    return {
        "members": sorted((p, n, s, named(g), named(st)) for p, n, s, g, st in members),
        "orders": sorted((c, no, a, r, named(m), named(g)) for c, no, a, r, m, g in orders),
        "entries": sorted((k, t, a, mo, named(g), named(m)) for k, t, a, mo, g, m in entries),
        "recruits": sorted((named(m), named(g), st, so) for m, g, st, so in recruits),
        "log": Counter((named(s), t, named(r)) for s, t, r in log),
    }


@pytest.mark.parametrize("kind", FILES)
def test_a_worker_killed_mid_import_resumes_to_what_a_clean_run_writes(
    live_pair, queue_backend, tmp_path, kind
):
    killed_db, clean_db = live_pair
    jobs_url, name = queue_url(queue_backend, tmp_path), f"kill-{uuid.uuid4().hex}"
    uploads = tmp_path / "uploads"
    apps = [
        create_app(
            make_config(
                db,
                JOBS_URL=jobs_url,
                JOBS_NAME=name,
                IMPORT_BATCH_ROWS=BATCH,
                UPLOAD_DIR=str(uploads),
            )
        )
        for db in live_pair
    ]
    makers = [a.extensions["guideapp"]["sessionmaker"] for a in apps]
    with makers[0]() as session:
        content = FILES[kind](session)
    killed_api = ApiClient(apps[0].test_client())
    job_id = upload(killed_api, kind, content).get_json()["id"]

    def job():
        with makers[0]() as session:
            return session.get(Job, job_id)

    first = _worker(killed_db, jobs_url, name, uploads, "tests.slow_units")
    try:
        _wait_for(job, lambda j: j.progress_done >= 3 * BATCH, what="three checkpoints")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    killed = job()
    assert killed.state == "running" and killed.progress_done < 23, killed.progress
    second = _worker(killed_db, jobs_url, name, uploads)
    try:
        finished = _wait_for(job, lambda j: j.state in ("succeeded", "failed", "cancelled"))
    finally:
        second.send_signal(signal.SIGTERM)
        _, errors = second.communicate(timeout=60)
    assert second.returncode == 0, errors.decode()[-2000:]
    assert finished.state == "succeeded", finished.error
    assert finished.attempts == 2 and finished.progress_done == 23

    clean = upload(ApiClient(apps[1].test_client()), kind, content, query="?wait=true")
    assert clean.status_code == 200, clean.get_json()
    assert finished.result == clean.get_json()
    assert finished.result["failed"] == 1 and finished.result["imported"] == 22
    with makers[0]() as one, makers[1]() as other:
        killed_state, clean_state = _written(one), _written(other)
        assert killed_state == clean_state
        assert killed_state["entries"], "the bound members' orders (or the recruits) earn"
        if kind == "members":
            phones = {line.split(",")[0] for line in content.decode().splitlines()[1:]}
            # each member created with a guide recruited once, every batch (the resumed ones
            # too) dated by the import's start, kept in its checkpoint
            moments = one.execute(
                select(CommissionRecruit.recruited_at, Member.bound_at)
                .join(Member, Member.id == CommissionRecruit.member_id)
                .where(Member.phone.in_(phones))
            ).all()
            assert len(moments) == 17
            assert len({at for at, _ in moments}) == 1 and all(a == b for a, b in moments)
        assert one.scalar(select(func.count()).select_from(ImportKey)) == 0
    queue_of(apps[0]).flush()
    for each in apps:
        each.extensions["guideapp"]["engine"].dispose()
