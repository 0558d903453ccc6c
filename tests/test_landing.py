"""The landing page over HTTP (its browser behaviour: test_landing_browser.py): headers,
escaping, assets, the OAuth hook, the public base URL QR codes encode, and what the scan
answer tells the page about the routed store's hours in the tenant's zone."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
import segno
from sqlalchemy import select, update

from guideapp import create_app
from guideapp.org.hours import WEEKDAYS, hours_on, next_opening, open_at
from guideapp.scans import landing
from guideapp.scans import service as scans
from guideapp.scans.models import ScanCode
from tests.conftest import HQ, ApiClient, make_config
from tests.factories import store_by_code

SHANGHAI = timezone(timedelta(hours=8))


@pytest.fixture
def app(database, connection):
    return create_app(make_config(database, SCAN_RATE_PER_ADDRESS=100_000), bind=connection)


def test_the_page_is_served_with_a_strict_policy(client):
    page = client.get("/s/stride-lbs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self';" in csp
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert 'data-state="active"' in html and 'data-kind="lbs"' in html
    assert 'data-fallback-url="https://stride.example.cn/stores"' in html
    assert "<noscript>" in html and "请开启 JavaScript" in html
    assert "<script>" not in html and " style=" not in html  # nothing inline for the CSP to refuse


def test_an_unknown_code_is_a_404_page_and_the_path_is_escaped(client):
    page = client.get('/s/"><script>alert(1)')
    assert page.status_code == 404 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "无法识别的二维码" in html and 'data-state="unknown"' in html
    assert "<script>alert" not in html and 'data-code="&#34;&gt;&lt;script&gt;alert(1)"' in html
    assert client.get("/s/" + "x" * 41).status_code == 404


def test_switched_off_and_expired_codes_are_known_to_the_page(client, session):
    session.execute(update(ScanCode).where(ScanCode.code == "zhang-card").values(active=False))
    session.execute(
        update(ScanCode)
        .where(ScanCode.code == "sh001-desk")
        .values(valid_until=datetime(2026, 1, 31, 17, 0, tzinfo=timezone.utc))
    )
    session.flush()
    assert 'data-state="inactive"' in client.get("/s/zhang-card").get_data(as_text=True)
    html = client.get("/s/sh001-desk").get_data(as_text=True)
    # 17:00 UTC is already the next day in Shanghai: the page says the tenant's date.
    assert 'data-state="expired"' in html and 'data-valid-until="2026-02-01"' in html


def test_a_stored_non_web_fallback_never_becomes_a_link(client, session):
    session.execute(
        update(ScanCode)
        .where(ScanCode.code == "stride-lbs")
        .values(fallback_url="javascript:alert(1)")
    )
    session.flush()
    html = client.get("/s/stride-lbs").get_data(as_text=True)
    assert "javascript:" not in html and 'data-fallback-url=""' in html


def test_assets_are_served_by_the_app(client):
    page = client.get("/s/stride-lbs").get_data(as_text=True)
    for name, mimetype in (("landing.js", "text/javascript"), ("landing.css", "text/css")):
        url = next(part for part in page.split('"') if part.startswith(f"/s/assets/{name}?v="))
        asset = client.get(url)
        assert asset.status_code == 200 and asset.mimetype == mimetype
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        assert "immutable" in asset.headers["Cache-Control"]
    sdk = client.get("/s/assets/jweixin.js")
    assert sdk.status_code == 200 and sdk.mimetype == "text/javascript"
    body = sdk.get_data(as_text=True)
    assert body.startswith("(function (module) {") and "window.wx = window.jWeixin" in body
    assert client.get("/s/assets/index.js").status_code == 404
    assert client.get("/s/assets/..%2F..%2Fconfig.py").status_code == 404


def test_the_oauth_hook_may_send_the_visitor_to_wechat_first(client, monkeypatch):
    seen = []

    def hook(code_row, request):
        seen.append(code_row.code)
        return "https://wechat.example/authorize?redirect_uri=x"

    monkeypatch.setattr(landing, "oauth_redirect_url", hook)
    first = client.get("/s/stride-lbs")
    assert first.status_code == 302 and first.headers["Location"].startswith("https://wechat.")
    back = client.get("/s/stride-lbs?code=abc&state=s")  # WeChat came back: no loop
    assert back.status_code == 200 and seen == ["stride-lbs"]
    assert client.get("/s/no-such-code").status_code == 404 and seen == ["stride-lbs"]


# --- the public base URL in QR codes --------------------------------------------------------


def _code_url(database, connection, session, **config) -> tuple[str, bytes]:
    api = ApiClient(create_app(make_config(database, **config), bind=connection).test_client())
    code_id = session.scalar(select(ScanCode.id).where(ScanCode.code == "stride-lbs"))
    body = api.get(HQ, f"/api/v1/codes/{code_id}").get_json()
    return body["url"], api.get(HQ, f"/api/v1/codes/{code_id}/qr.svg").get_data()


def _svg(url: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(
        buffer, kind="svg", scale=8, border=4, xmldecl=True
    )
    return buffer.getvalue()


def test_qr_codes_encode_the_public_base_url(database, connection, session):
    url, svg = _code_url(
        database, connection, session, PUBLIC_BASE_URL="https://guide.example.com/"
    )
    assert url == "https://guide.example.com/s/stride-lbs" and svg == _svg(url)
    # The older name, a whole prefix, still works when the new one is unset...
    url, _ = _code_url(database, connection, session, SCAN_BASE_URL="https://s.example.cn/s/")
    assert url == "https://s.example.cn/s/stride-lbs"
    # ...and with neither, the address the API was called on (any port `make run` serves).
    url, svg = _code_url(database, connection, session)
    assert url == "http://localhost/s/stride-lbs" and svg == _svg(url)


# --- the store's hours in the scan answer ---------------------------------------------------


def test_the_scan_answer_carries_what_the_page_shows(client):
    answer = client.post(
        "/api/v1/scans", json={"code": "sh001-desk"}, environ_base={"REMOTE_ADDR": "10.0.0.5"}
    ).get_json()
    store = answer["store"]
    assert store["phone"] == "021-62881234"
    assert store["opening_hours"]["sat"] == ["10:00", "22:30"]
    assert store["open_now"] in (True, False) and store["hours_today"] is not None
    assert set(store["next_opening"]) == {"weekday", "time", "in_days"}
    assert answer["wecom_contact_qr_url"] and answer["community_qr_url"]


def test_open_or_closed_is_read_in_the_tenants_zone(session):
    store = store_by_code(session, "SH002")
    store.opening_hours = {"mon": ["10:00", "22:00"], "tue": None, "wed": ["09:00", "12:00"]}
    session.flush()

    def at(utc: datetime) -> dict:
        return scans.scan(session, code="sh001-desk", now=utc)["store"]

    session.execute(update(ScanCode).where(ScanCode.code == "sh001-desk").values(store_id=store.id))
    # Monday 2026-11-30 02:30 UTC is 10:30 in Shanghai: open (at 02:30 UTC it is not, by UTC).
    monday = at(datetime(2026, 11, 30, 2, 30, tzinfo=timezone.utc))
    assert monday["open_now"] is True and monday["hours_today"] == ["10:00", "22:00"]
    # Monday 14:30 UTC is 22:30 in Shanghai: closed; Tuesday is a day off; opens Wednesday.
    late = at(datetime(2026, 11, 30, 14, 30, tzinfo=timezone.utc))
    assert late["open_now"] is False
    assert late["next_opening"] == {"weekday": "wed", "time": "09:00", "in_days": 2}
    tuesday = at(datetime(2026, 12, 1, 4, 0, tzinfo=timezone.utc))
    assert tuesday["open_now"] is False and tuesday["hours_today"] is None
    # Thursday is not given: unknown, so the page shows no badge.
    thursday = at(datetime(2026, 12, 3, 4, 0, tzinfo=timezone.utc))
    assert thursday["open_now"] is None
    assert thursday["next_opening"] == {"weekday": "mon", "time": "10:00", "in_days": 4}


def test_hours_edges():
    hours = {day: ["10:00", "22:00"] for day in WEEKDAYS}
    monday = datetime(2026, 11, 30, tzinfo=SHANGHAI)
    assert open_at(hours, monday.replace(hour=9, minute=59)) is False
    assert open_at(hours, monday.replace(hour=10)) is True
    assert open_at(hours, monday.replace(hour=21, minute=59)) is True
    assert open_at(hours, monday.replace(hour=22)) is False  # closes at 22:00 sharp
    assert next_opening(hours, monday.replace(hour=9))["in_days"] == 0
    assert next_opening(hours, monday.replace(hour=10))["in_days"] == 1
    assert open_at({}, monday) is None and hours_on({}, monday) is None
    assert next_opening({}, monday) is None
    assert next_opening({"mon": None}, monday) is None
