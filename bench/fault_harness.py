"""What every fault scenario stands on: two databases cloned from one demo tenant, the
faulted side (gunicorn and a job worker on the first, driven over HTTP) and the clean side
(the same app in this process on the second, driven through Flask's test client, no fault),
and the figures that must come out equal."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from bench.common import migrate
from bench.fault_servers import Gunicorn, JobWorker, OwnPostgres, OwnRedis
from guideapp.config import PROJECT_ROOT, Config
from guideapp.db import make_engine, transaction

PASSWORD = "demo-pass-2026"
HQ, GUIDE = "13800000001", "13800000003"
FIXTURES = PROJECT_ROOT / "fixtures" / "demo"
UPLOADS_MB = 4  # the faulted side's upload disk: a tmpfs this big


class HttpSide:
    """The faulted side: requests over real sockets to gunicorn, a new connection each."""

    name = "faulted"

    def __init__(self, port: int):
        self.port = port
        self.tokens: dict[str, str] = {}

    def request(self, method, path, body=b"", headers=None, timeout=60.0):
        """(status, headers, body); raises OSError / http.client errors when the server
        went away mid-request (the caller decides whether that was the fault)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def send_and_drop(self, method, path, body: bytes, headers: dict) -> None:
        """Send a whole request, then close the socket without reading any answer: a phone
        that lost its network right after sending."""
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall("\r\n".join(head).encode() + body)

    def auth(self, phone: str) -> dict:
        if phone not in self.tokens:
            body = json.dumps({"phone": phone, "password": PASSWORD}).encode()
            status, _, answer = self.request(
                "POST", "/api/v1/auth/login", body, {"Content-Type": "application/json"}
            )
            assert status == 200, (status, answer[:300])
            self.tokens[phone] = json.loads(answer)["access_token"]
        return {"Authorization": f"Bearer {self.tokens[phone]}"}


class CleanSide(HttpSide):
    """The fault-free run: the same app and requests, in this process, on the clean copy."""

    name = "clean"

    def __init__(self, app):
        super().__init__(0)
        self.app, self.client = app, app.test_client()

    def request(self, method, path, body=b"", headers=None, timeout=60.0):
        headers = dict(headers or {})
        content_type = headers.pop("Content-Type", None)
        response = self.client.open(
            path, method=method, data=body, headers=headers, content_type=content_type
        )
        return response.status_code, dict(response.headers), response.get_data()


class Harness:
    """Servers, databases and both sides; `close()` stops and removes everything."""

    def __init__(self, *, pg_port: int, redis_port: int, http_port: int):
        self.tmp = Path(tempfile.mkdtemp(prefix="faults_"))
        self.closers: list = []
        self.pg = OwnPostgres(pg_port)
        self.closers.append(self.pg.close)
        self.redis = OwnRedis(redis_port)
        self.closers.append(self.redis.close)
        self.secrets_key = Fernet.generate_key().decode()
        self._template()
        for name in ("faults_run", "faults_clean"):
            self._admin(f"CREATE DATABASE {name} TEMPLATE faults_template")
        self.run_url, self.clean_url = self.pg.url("faults_run"), self.pg.url("faults_clean")
        self.engines = {"faulted": make_engine(self.run_url), "clean": make_engine(self.clean_url)}
        self.closers.append(lambda: [e.dispose() for e in self.engines.values()])
        # The demo guide's members, under the same ids in both databases (read before any
        # scenario adds members: an import's new members get ids of their own on each side).
        with self.engines["clean"].connect() as conn:
            self.guide_members: list[str] = list(
                conn.execute(
                    text(
                        "SELECT m.id FROM members m JOIN staff s ON s.id = m.guide_id "
                        "WHERE s.phone = :p ORDER BY m.id LIMIT 50"
                    ),
                    {"p": GUIDE},
                ).scalars()
            )
        self.uploads = self.tmp / "uploads"
        self.uploads.mkdir()
        self.uploads_mounted = _mount_tmpfs(self.uploads, UPLOADS_MB)
        if self.uploads_mounted:
            self.closers.append(lambda: subprocess.run(["umount", str(self.uploads)]))
        self.env = self._env()
        self.gunicorn = Gunicorn(http_port, self.env)
        self.closers.append(self.gunicorn.close)
        self.faulted = HttpSide(http_port)
        self.clean = CleanSide(self._clean_app())
        self.worker: JobWorker | None = None

    # --- set-up --------------------------------------------------------------------------

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.pg.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(sql))
        engine.dispose()

    def _template(self) -> None:
        """The demo tenant and a WeChat Pay merchant, once; both sides are copies of it."""
        from guideapp.demo import load_demo
        from guideapp.org.models import Staff
        from guideapp.policy.actor import Actor
        from guideapp.secretbox import SecretBox
        from guideapp.wechatpay.service import create_merchant
        from tests.wechatpay_fake import SAMPLE_TRANSACTION, FakeWeChatPay

        self._admin("CREATE DATABASE faults_template")
        url = self.pg.url("faults_template")
        migrate(url)
        engine = make_engine(url)
        self.pay = FakeWeChatPay()
        with Session(engine) as session, transaction(session):
            load_demo(session, FIXTURES)
            hq = session.query(Staff).filter_by(phone=HQ).one()
            data = {
                "name": "faults",
                "mchid": SAMPLE_TRANSACTION["mchid"],
                "appids": [SAMPLE_TRANSACTION["appid"]],
                "apiv3_key": self.pay.apiv3_key,
                "platform_keys": [self.pay.platform_key()],
                "store_id": None,
                "terminals": [],
                "active": True,
            }
            box = SecretBox(self.secrets_key)
            self.merchant_id = create_merchant(
                session, actor=Actor.for_staff(hq), box=box, data=data
            ).id
        engine.dispose()

    def _env(self) -> dict:
        return {
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "FAULTS_TMP": str(self.tmp),
            "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prometheus"),
            "GUIDEAPP_DATABASE_URL": self.run_url,
            "GUIDEAPP_JOBS_URL": self.redis.url,
            "GUIDEAPP_JOBS_NAME": "faults",
            "GUIDEAPP_UPLOAD_DIR": str(self.uploads),
            "GUIDEAPP_WECHAT_SECRETS_KEY": self.secrets_key,
            "GUIDEAPP_LOG_LEVEL": "WARNING",
            "GUIDEAPP_WEB_WORKERS": "2",
            # Short lease and sweeps: recovery in seconds, not minutes (production: 300 / 60).
            "GUIDEAPP_JOBS_LEASE": "3",
            "GUIDEAPP_JOBS_RECOVER_EVERY": "1",
            "GUIDEAPP_JOBS_POLL_MAX": "0.2",
            "GUIDEAPP_JOBS_RETRY_DELAY": "1",
            "GUIDEAPP_IMPORT_BATCH_ROWS": "500",
            "GUIDEAPP_PUBLISH_BATCH_STORES": "4",
            "GUIDEAPP_SCAN_RATE_PER_ADDRESS": "1000000",
        }

    def _clean_app(self):
        from guideapp import create_app

        config = Config(
            DATABASE_URL=self.clean_url,
            JOBS_URL=f"sqlite:///{self.tmp / 'clean-jobs.db'}",
            JOBS_NAME="faults-clean",
            UPLOAD_DIR=str(self.tmp / "clean-uploads"),
            WECHAT_SECRETS_KEY=self.secrets_key,
            LOG_LEVEL="ERROR",
            IMPORT_BATCH_ROWS=500,
            PUBLISH_BATCH_STORES=4,
        )
        return create_app(config)

    # --- the job worker ------------------------------------------------------------------

    def start_worker(self, *modules: str) -> JobWorker:
        self.stop_worker()
        self.worker = JobWorker(self.env, *modules)
        return self.worker

    def kill_worker(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def job(self, job_id: str) -> dict:
        with self.engines["faulted"].connect() as conn:
            row = conn.execute(
                text("SELECT state, progress_done, attempts, result, error FROM jobs WHERE id=:i"),
                {"i": job_id},
            ).one()
        return dict(row._mapping)

    def wait_job(self, job_id: str, until, seconds: float = 90.0) -> dict:
        deadline = time.monotonic() + seconds
        while True:
            job = self.job(job_id)
            if until(job):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} stayed {job}")
            time.sleep(0.05)

    def close(self) -> None:
        self.stop_worker()
        for close in reversed(self.closers):
            try:
                close()
            except Exception as error:  # noqa: BLE001 - the rest must still be stopped
                print(f"(clean-up: {type(error).__name__}: {error})")
        subprocess.run(["rm", "-rf", str(self.tmp)], check=False)


def _mount_tmpfs(directory: Path, megabytes: int) -> bool:
    """A small disk of its own for the faulted side's uploads (root only; False otherwise)."""
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(directory)],
        capture_output=True,
    )
    return done.returncode == 0


# --- the figures both sides must agree on --------------------------------------------------

FIGURES = {
    "members": "SELECT count(*) FROM members",
    "orders": "SELECT count(*), coalesce(sum(amount_fen), 0) FROM orders",
    "refunds": "SELECT count(*), coalesce(sum(amount_fen), 0) FROM order_refunds",
    "commission_entries": "SELECT count(*), coalesce(sum(amount_fen), 0) FROM commission_entries",
    "commission_recruits": "SELECT count(*) FROM commission_recruits",
    "points_entries": "SELECT count(*), coalesce(sum(points), 0) FROM points_entries",
    "member_notes": "SELECT count(*) FROM member_notes",
    "bindings": "SELECT count(*) FROM bindings",
    "tasks": "SELECT count(*) FROM tasks",
    "task_targets": "SELECT count(*) FROM task_targets",
    "uploads": "SELECT count(*), coalesce(sum(size), 0) FROM uploads",
}
TASKS_PER_CAMPAIGN_STORE = """
    SELECT c.title, s.code, count(*) FROM tasks t
    JOIN campaigns c ON c.id = t.campaign_id JOIN stores s ON s.id = t.store_id
    GROUP BY c.title, s.code"""
CHANGE_LOG = "SELECT table_name, count(*) FROM change_log GROUP BY table_name"
# Rule 1 of SYNC.md: a pull that read counter N has seen every change stamped <= N. A
# change stamped above its tenant's counter would be skipped by every pull: lost.
CHANGES_ABOVE_COUNTER = """
    SELECT count(*) FROM change_log l JOIN sync_counters c ON c.tenant_id = l.tenant_id
    WHERE l.seq > c.value"""


def figures(engine) -> dict:
    with engine.connect() as conn:
        found = {
            name: [int(v) for v in conn.execute(text(sql)).one()] for name, sql in FIGURES.items()
        }
        found["change_log"] = {t: int(n) for t, n in conn.execute(text(CHANGE_LOG))}
        found["tasks_per_campaign_store"] = {
            f"{title}@{code}": int(n)
            for title, code, n in conn.execute(text(TASKS_PER_CAMPAIGN_STORE))
        }
        found["changes_above_counter"] = int(conn.execute(text(CHANGES_ABOVE_COUNTER)).scalar())
    return found


def differences(faulted: dict, clean: dict) -> list[str]:
    """What differs, named: `orders: faulted [2401, 100] vs clean [2400, 90]`."""
    out = []
    for name in sorted(set(faulted) | set(clean)):
        a, b = faulted.get(name), clean.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    out.append(f"{name}[{key}]: faulted {a.get(key)} vs clean {b.get(key)}")
        elif a != b:
            out.append(f"{name}: faulted {a} vs clean {b}")
    if faulted.get("changes_above_counter"):
        out.append(f"{faulted['changes_above_counter']} changes above their counter (lost)")
    return out
