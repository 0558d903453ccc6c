"""A real WatermelonDB client (clients/watermelon/harness.mjs, LokiJS in memory under Node)
syncs against the real app served over HTTP on loopback: first sync, offline edits on two
phones, a 409 conflict, a retried push after a lost response, a member transfer (with its
notes, tags and orders), and offline work on records a pull deletes (a cancelled task, a
note on a member transferred away, a store task claimed offline by a guide who then moves
store), which the client pushes before WatermelonDB destroys it.

The harness needs `npm ci --prefix clients/watermelon` (done by .ci/run). Without its
node_modules the test is skipped locally and fails in CI (CI=true).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from guideapp import create_app
from guideapp.config import PROJECT_ROOT, Config
from guideapp.db import make_engine, transaction
from guideapp.demo import load_demo
from guideapp.migrations import alembic_config
from guideapp.sync import service as sync_service

CLIENT_DIR = PROJECT_ROOT / "clients" / "watermelon"
HARNESS = CLIENT_DIR / "harness.mjs"
FIXTURES = PROJECT_ROOT / "fixtures" / "demo"
HARNESS_TIMEOUT_SECONDS = 180
PAGE_SIZE = 40


def _require_client() -> str:
    """The node binary, or a skip (locally) / failure (CI) saying what is missing."""
    in_ci = os.environ.get("CI") == "true"
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not on PATH"
    elif not (CLIENT_DIR / "node_modules" / "@nozbe" / "watermelondb").is_dir():
        missing = (
            f"{CLIENT_DIR / 'node_modules'} is missing; run "
            "`npm ci --prefix clients/watermelon --no-audit --no-fund`"
        )
    if missing:
        if in_ci:
            pytest.fail(f"WatermelonDB client harness cannot run in CI: {missing}")
        pytest.skip(f"WatermelonDB client harness not installed: {missing}")
    return node


def _demo_database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'watermelon.db'}"
    command.upgrade(alembic_config({}, url=url), "head")
    engine = make_engine(url)
    try:
        with Session(engine) as session, transaction(session):
            load_demo(session, FIXTURES)
    finally:
        engine.dispose()
    return url


@contextmanager
def _serving(url: str):
    """The real app on 127.0.0.1:<free port> in a background thread."""
    app = create_app(Config(DATABASE_URL=url, SECRET_KEY="x" * 40, LOG_LEVEL="WARNING"))
    access_log = logging.getLogger("werkzeug")
    previous_level = access_log.level
    access_log.setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="watermelon-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        access_log.setLevel(previous_level)
        engine = app.extensions["guideapp"]["engine"]
        if engine is not None:
            engine.dispose()


def _text(stream) -> str:
    return stream.decode(errors="replace") if isinstance(stream, bytes) else (stream or "")


def test_watermelondb_client_syncs_with_the_server(tmp_path, monkeypatch):
    node = _require_client()
    url = _demo_database(tmp_path)
    # Small pages, so that the first sync of the demo scope (~280 records) spans several
    # pages and the client's paging loop is exercised (the server's default is 2000).
    monkeypatch.setattr(sync_service, "pull", partial(sync_service.pull, page_size=PAGE_SIZE))
    with _serving(url) as base_url:
        try:
            run = subprocess.run(
                [node, str(HARNESS), "--base-url", base_url],
                cwd=CLIENT_DIR,
                capture_output=True,
                text=True,
                timeout=HARNESS_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                f"harness timed out after {HARNESS_TIMEOUT_SECONDS}s\n"
                f"--- stdout ---\n{_text(exc.stdout)}\n"
                f"--- stderr ---\n{_text(exc.stderr)}"
            )
    output = f"--- stdout ---\n{run.stdout}\n--- stderr ---\n{run.stderr}"
    print(output)
    assert run.returncode == 0, f"harness exited with {run.returncode}\n{output}"
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "8 passed, 0 failed", output
    for name in "abcdefgh":
        assert any(line.startswith(f"ok {name} ") for line in lines), f"no {name}\n{output}"
    first_sync = next(line for line in lines if line.startswith("ok a "))
    pages = int(re.search(r"(\d+) page\(s\)", first_sync).group(1))
    assert pages > 1, f"the first sync should have been paged\n{output}"
