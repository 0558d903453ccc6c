"""Production refuses demo settings; every response carries its security headers; CORS
answers configured origins only; logs hold no phone, token, password or SQL parameter."""

import io
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from guideapp import create_app
from guideapp.config import Config
from guideapp.logs import configure_logging, redact
from guideapp.security import DEMO_SECRET, HSTS, production_refusals
from tests.conftest import GUIDE, make_config

GOOD_SECRET = "x" * 40
ROOT = Path(__file__).resolve().parent.parent


def production(**overrides) -> dict:
    settings = {
        "SECRET_KEY": GOOD_SECRET,
        "DATABASE_URL": "postgresql+psycopg://guideapp@db/guideapp",
        "ALLOWED_ORIGINS": ["https://console.example.com"],
        **overrides,
    }
    return settings


@pytest.mark.parametrize(
    "overrides,named",
    [
        ({"SECRET_KEY": DEMO_SECRET}, "demo's published secret"),
        ({"SECRET_KEY": ""}, "missing"),
        ({"SECRET_KEY": "short-secret"}, "shorter than 32 bytes"),
        ({"DATABASE_URL": "sqlite:///instance/guideapp.db"}, "SQLite"),
        ({"ALLOWED_ORIGINS": []}, "ALLOWED_ORIGINS is empty"),
    ],
)
def test_production_names_each_refusal(overrides, named):
    assert production_refusals(production()) == []
    refusals = production_refusals(production(**overrides))
    assert len(refusals) == 1 and named in refusals[0]


def test_production_refuses_to_start_and_the_demo_says_it_is_one(database, capsys):
    with pytest.raises(RuntimeError, match="refuses to start in production.*demo's published"):
        create_app(Config(**production(SECRET_KEY=DEMO_SECRET, ENV_NAME="production")))
    create_app(make_config(database))  # its log goes to the stderr of the moment
    assert "DEMO MODE" in capsys.readouterr().err


def test_every_response_carries_its_security_headers(api, client):
    health = client.get("/healthz")
    assert health.headers["X-Content-Type-Options"] == "nosniff"
    assert health.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in health.headers  # the demo runs on plain HTTP
    me = api.get(GUIDE, "/api/v1/me")
    assert me.headers["Cache-Control"] == "no-store"
    refused = client.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"})
    assert refused.status_code == 401 and refused.headers["Cache-Control"] == "no-store"
    for page in ("/docs", "/s/stride-lbs"):
        html = client.get(page)
        assert html.mimetype == "text/html"
        assert html.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in html.headers["Content-Security-Policy"]


def test_production_adds_hsts(database):
    if database.backend != "postgres":
        pytest.skip("production runs on PostgreSQL only (SQLite is refused)")
    config = make_config(database, ENV_NAME="production", ALLOWED_ORIGINS=["-"])
    config.SECRET_KEY = GOOD_SECRET
    client = create_app(config).test_client()
    assert client.get("/healthz").headers["Strict-Transport-Security"] == HSTS


def test_cors_answers_configured_origins_only(database):
    client = create_app(
        make_config(database, ALLOWED_ORIGINS=["https://console.example.com"])
    ).test_client()
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
    }
    ours = client.options(
        "/api/v1/auth/login", headers={"Origin": "https://console.example.com", **preflight}
    )
    assert ours.headers["Access-Control-Allow-Origin"] == "https://console.example.com"
    assert "idempotency-key" in ours.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in ours.headers  # bearer tokens, no cookies
    theirs = client.options(
        "/api/v1/auth/login", headers={"Origin": "https://evil.example.net", **preflight}
    )
    assert "Access-Control-Allow-Origin" not in theirs.headers
    plain = create_app(make_config(database)).test_client()  # no origins configured: no CORS
    answer = plain.get("/healthz", headers={"Origin": "https://console.example.com"})
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_logs_hold_no_phone_token_password_or_sql_parameter(session):
    stream = io.StringIO()
    configure_logging("INFO")
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        with pytest.raises(DBAPIError) as failed:
            session.execute(text("SELECT * FROM no_such_table WHERE p = :p"), {"p": "13812345678"})
        logging.getLogger("guideapp.test").exception(
            "login for 13812345678 with {'password': 'hunter2'} Bearer abc.def",
            exc_info=failed.value,
        )
    finally:
        configure_logging("WARNING")
    line = stream.getvalue()
    assert "13812345678" not in line and "138****5678" in line
    assert "hunter2" not in line and "abc.def" not in line
    assert "SQL parameters hidden" in str(failed.value)
    assert redact("ids 1138123456789012 stay") == "ids 1138123456789012 stay"


def test_gunicorn_sends_no_server_banner(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = tmp_path / "tiny.py"
    app.write_text("def app(environ, start):\n    start('200 OK', [])\n    return [b'ok']\n")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")]
        + ["--bind", f"127.0.0.1:{port}", "--chdir", str(tmp_path), "tiny:app"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as answer:
                    assert "gunicorn" not in (answer.headers.get("Server") or "").lower()
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not start")
    finally:
        server.terminate()
        server.wait(10)


def test_uploads_are_served_as_what_their_bytes_are(api):
    from tests.conftest import HQ

    def served(data, name):
        made = api.client.post(
            "/api/v1/uploads",
            headers=api.headers(HQ),
            data={"file": (io.BytesIO(data), name)},
            content_type="multipart/form-data",
        )
        assert made.status_code == 201, made.get_json()
        return api.client.get(
            f"/api/v1/uploads/{made.get_json()['id']}", headers=api.headers(GUIDE)
        )

    polyglot = served(b"GIF89a\x01\x00\x01\x00<html><script>alert(1)</script></html>", "x.html")
    assert polyglot.mimetype == "image/gif"
    assert polyglot.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in polyglot.headers["Content-Security-Policy"]
    assert (
        polyglot.headers["Content-Disposition"].startswith("inline")
        and "x.gif" in (polyglot.headers["Content-Disposition"])
    )
    pdf = served(
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "poster.png"
    )
    assert pdf.mimetype == "application/pdf" and "poster.pdf" in pdf.headers["Content-Disposition"]
    again = api.client.get(
        pdf.request.path, headers={**api.headers(GUIDE), "If-None-Match": pdf.headers["ETag"]}
    )
    assert again.status_code == 304


def test_staff_passwords_must_be_hard_to_guess(api):
    from tests.conftest import HQ

    body = {"name": "新导购", "phone": "13922220000", "role": "guide", "store_id": None}
    store = api.get(HQ, "/api/v1/stores?limit=1").get_json()["items"][0]["id"]
    for weak in ("password123456", "1qaz2wsx3edc4rfv", "13922220000a", "short"):
        refused = api.post(HQ, "/api/v1/staff", json={**body, "store_id": store, "password": weak})
        assert refused.status_code == 422 and "password" in refused.get_json()["errors"], weak
    made = api.post(
        HQ, "/api/v1/staff", json={**body, "store_id": store, "password": "Stride-秋季-门店-42"}
    )
    assert made.status_code == 201, made.get_json()


def test_a_guesser_locks_out_only_themselves_and_hq_can_reset(api, client, app):
    from tests.conftest import HQ

    def login(address, password="wrong-password"):
        return client.post(
            "/api/v1/auth/login",
            json={"phone": GUIDE, "password": password},
            environ_base={"REMOTE_ADDR": address},
        )

    for _ in range(app.config["LOGIN_MAX_FAILURES_PER_PHONE"]):
        assert login("10.6.6.6").status_code == 401
    assert login("10.6.6.6", "demo-pass-2026").status_code == 429  # the guesser is stopped
    assert login("10.1.1.1", "demo-pass-2026").status_code == 200  # the guide in the store isn't
    app.config["LOGIN_MAX_FAILURES_PER_PHONE_ANYWHERE"] = 8
    for i in range(3):
        login(f"10.7.7.{i}")
    assert login("10.1.1.1", "demo-pass-2026").status_code == 429  # a spread guess is stopped
    # (the demo's 160 guides fit one page; its 210 staff do not, and ids are random)
    guide = api.get(HQ, "/api/v1/staff?role=guide&limit=200").get_json()["items"]
    guide_id = next(s["id"] for s in guide if s["phone"] == GUIDE)
    reset = api.patch(HQ, f"/api/v1/staff/{guide_id}", json={"password": "new-Stride-pass-77"})
    assert reset.status_code == 200, reset.get_json()
    assert login("10.1.1.1", "new-Stride-pass-77").status_code == 200  # HQ's reset lets them in


def test_behind_a_proxy_limits_see_the_real_client_and_nobody_forges_it(database, connection):
    def attempts(app, forwarded):
        client = app.test_client()
        for _ in range(app.config["LOGIN_MAX_FAILURES_PER_PHONE"]):
            client.post(
                "/api/v1/auth/login",
                json={"phone": GUIDE, "password": "wrong-password"},
                headers={"X-Forwarded-For": "203.0.113.9"},
            )
        return client.post(
            "/api/v1/auth/login",
            json={"phone": GUIDE, "password": "demo-pass-2026"},
            headers={"X-Forwarded-For": forwarded},
        ).status_code

    behind_proxy = create_app(make_config(database, PROXY_HOPS=1), bind=connection)
    assert attempts(behind_proxy, "198.51.100.7") == 200  # another client, seen as such
    # No proxy: the header is the client's word, and it is not taken.
    exposed = create_app(make_config(database), bind=connection)
    assert attempts(exposed, "198.51.100.8") == 429  # forging it does not escape the limit


def test_slow_queries_are_logged_without_their_parameters(database, capsys):
    from guideapp.db import make_engine

    engine = make_engine(database.url, slow_query_ms=0.0001)
    configure_logging("WARNING")
    with engine.connect() as conn:
        conn.execute(text("SELECT :phone AS p"), {"phone": "13812345678"}).all()
    engine.dispose()
    err = capsys.readouterr().err
    assert "slow query" in err and "SELECT" in err and "1381234" not in err


def test_lines_logged_inside_a_job_carry_its_id(capsys):
    from guideapp.logs import log_context

    configure_logging("INFO")
    with log_context(job_id="job-42"):
        logging.getLogger("guideapp.coupons").warning("coupon template low on stock")
    logging.getLogger("guideapp.coupons").warning("outside")
    configure_logging("WARNING")
    inside, outside = capsys.readouterr().err.strip().splitlines()[-2:]
    assert '"job_id": "job-42"' in inside and "job_id" not in outside
