"""The landing page a QR code opens, in a real browser: headless Chromium (Debian's
`chromium`, driven by Playwright) against the real app served over HTTP on loopback, over
a migrated demo database on SQLite and PostgreSQL, with geolocation granted and denied.

Without chromium or Playwright the tests skip locally and fail in CI (CI=true; .ci/run
installs both). GUIDEAPP_TEST_SCREENSHOTS=<dir> keeps a PNG of every screen checked.

Two failures are made at the browser's edge, as the network makes them: a dropped
connection (the request aborted) and a proxy's 502 page. Everything else is the app's own
answer (the 429 is the real rate limit, the 410 a real expired code).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import segno
from alembic import command
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from guideapp import create_app
from guideapp.db import transaction, utcnow
from guideapp.demo import load_demo
from guideapp.migrations import alembic_config
from guideapp.org.hours import WEEKDAYS
from guideapp.org.models import Store
from guideapp.scans.models import Scan, ScanCode
from tests.conftest import FIXTURES, HQ, ApiClient, make_config
from tests.databases import backends, scratch_database
from tests.fake_wecom import shared as fake_wecom_server

CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SHOTS = os.environ.get("GUIDEAPP_TEST_SCREENSHOTS")
PER_CODE_LIMIT = (
    40  # low, so one code can be driven over it; the address limit stays out of the way
)

NEAR_SH001 = {"latitude": 31.2300, "longitude": 121.4460}  # WGS-84, a few hundred metres off
URUMQI = {"latitude": 43.8256, "longitude": 87.6168}  # no demo store within reach
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI"
)


def _playwright():
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright, missing = None, "the playwright package is not installed (make install)"
    if missing is None and not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing: apt-get install -y chromium fonts-noto-cjk"
    if missing:
        if IN_CI:
            pytest.fail(f"Browser tests cannot run in CI: {missing}")
        pytest.skip(f"Browser tests skipped: {missing}")
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _playwright()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


class _FakeWeComImages(BaseHTTPRequestHandler):
    """FAKE WeCom image host for tests: any path answers a QR PNG of that path, as WeCom's
    contact-way and group-join qr_code URLs answer an image."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = _qr_png(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _qr_png(text: str) -> bytes:
    import io

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=6, border=2)
    return buffer.getvalue()


@contextmanager
def _thread_serving(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Site:
    """The served app, its database, and the fake image host the stores' QR codes live on."""

    def __init__(self, app, base: str, images: str):
        self.app, self.base, self.images = app, base, images
        self.api = ApiClient(app.test_client())
        self.engine = app.extensions["guideapp"]["engine"]

    def session(self):
        return Session(self.engine)

    def store_id(self, code: str) -> str:
        with self.session() as session:
            return session.scalar(select(Store.id).where(Store.code == code))

    def new_code(self, **data) -> str:
        made = self.api.post(HQ, "/api/v1/codes", json={"channel": "poster", **data})
        assert made.status_code == 201, made.get_json()
        return made.get_json()["code"]

    def scans_of(self, code: str) -> list[Scan]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(Scan)
                    .join(ScanCode, ScanCode.id == Scan.code_id)
                    .where(ScanCode.code == code)
                )
            )


@pytest.fixture(scope="module", params=backends())
def site(request, tmp_path_factory):
    """The real app on 127.0.0.1:<free port> (werkzeug, threaded) over the demo."""
    images_server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeWeComImages)
    with (
        scratch_database(request.param, tmp_path_factory) as url,
        _thread_serving(images_server),
    ):
        images = f"http://127.0.0.1:{images_server.server_port}"
        command.upgrade(alembic_config({}, url=url), "head")
        app = create_app(
            make_config(
                _Url(url),
                # the stores' QR host, and the fake WeCom's 「联系我」 QR images
                LANDING_IMAGE_SOURCES=f"{images} {fake_wecom_server().url}",
                SCAN_RATE_PER_CODE=PER_CODE_LIMIT,
                SCAN_RATE_PER_ADDRESS=100_000,
            )
        )
        engine = app.extensions["guideapp"]["engine"]
        with Session(engine) as session, transaction(session):
            load_demo(session, FIXTURES)
            for store in session.scalars(select(Store)):
                store.wecom_contact_qr_url = f"{images}/contact/{store.code}.png"
                store.community_qr_url = f"{images}/group/{store.code}.png"
        access_log = logging.getLogger("werkzeug")
        previous = access_log.level
        access_log.setLevel(logging.WARNING)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        with _thread_serving(server):
            yield Site(app, f"http://127.0.0.1:{server.server_port}", images)
        access_log.setLevel(previous)
        engine.dispose()


class _Url:
    def __init__(self, url):
        self.url = url


@pytest.fixture
def open_page(browser, site, request):
    """open_page(code, **context options) -> the page with its final screen shown."""
    contexts = []
    problems: list[str] = []

    def _open(code: str, *, query="", wait=True, setup=None, refusals=None, **options):
        options.setdefault("locale", "zh-CN")
        options.setdefault("viewport", {"width": 390, "height": 844})
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.on(
            "console",
            lambda m: (
                (problems if refusals is None else refusals).append(m.text)
                if "Content Security Policy" in m.text
                else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        if setup is not None:
            setup(page)
        page.goto(f"{site.base}/s/{code}{query}")
        if wait:
            _settled(page)
        return page

    yield _open
    for context in contexts:
        context.close()
    assert not problems, problems  # no CSP refusal, no script error on any screen


def _settled(page, timeout=20_000):
    page.wait_for_selector("#app[data-shown]:not([data-shown='loading'])", timeout=timeout)


def _shot(page, name: str, site: Site) -> None:
    if SHOTS:
        backend = "pg" if site.engine.dialect.name == "postgresql" else "sqlite"
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}-{backend}.png"), full_page=True)


def _visible_text(page) -> str:
    return page.inner_text("#app")


def _granted(position) -> dict:
    return {"permissions": ["geolocation"], "geolocation": position}


# --- the routed store ---------------------------------------------------------------------


def test_nearest_store_with_its_guide_qr_codes_hours_and_phone(open_page, site):
    page = open_page("stride-lbs", **_granted(NEAR_SH001))
    assert page.get_attribute("#app", "data-shown") == "store"
    text = _visible_text(page)
    assert "Stride 上海南京西路店" in text
    assert "上海市静安区南京西路1266号恒隆广场B1" in text
    assert re.search(r"距您 \d+ 米", text), text
    assert "为您服务的导购：" in text
    assert page.get_attribute("#store-call", "href") == "tel:021-62881234"
    for image in ("#contact-img", "#group-img"):  # loaded from the (fake) WeCom host
        assert page.eval_on_selector(image, "img => img.complete && img.naturalWidth > 0")
        assert page.get_attribute(image, "src").startswith(site.images)
    assert "长按识别二维码，添加导购企业微信" in text
    assert "长按识别二维码，加入门店社群" in text
    assert page.get_attribute("#app", "data-store-state") in {"open", "closed"}
    _shot(page, "store", site)
    [scan] = site.scans_of("stride-lbs")[-1:]
    assert scan.outcome == "nearest" and scan.lat is not None and scan.coord_system == "wgs84"


def test_a_store_closed_now_says_so_and_when_it_opens(open_page, site):
    store_id = site.store_id("SH002")
    today = WEEKDAYS[utcnow().astimezone(ZoneInfo("Asia/Shanghai")).weekday()]
    hours = {day: (None if day == today else ["10:00", "22:00"]) for day in WEEKDAYS}
    changed = site.api.patch(HQ, f"/api/v1/stores/{store_id}", json={"opening_hours": hours})
    assert changed.status_code == 200, changed.get_json()
    code = site.new_code(kind="store", store_id=store_id, fallback_url="https://stride.example.cn/")

    page = open_page(code, **_granted(NEAR_SH001))
    text = _visible_text(page)
    assert page.get_attribute("#app", "data-store-state") == "closed"
    assert "门店当前休息中" in text and "明天 10:00 开门" in text and "今日不营业" in text
    assert "休息中" in page.inner_text("#store-badge")
    assert page.get_attribute("#fallback", "href") == "https://stride.example.cn/"
    page.click("#store-week summary")
    assert "周一" in page.inner_text("#store-hours")
    _shot(page, "store-closed", site)


def test_qr_images_on_a_host_the_page_may_not_load_become_links(open_page, site):
    store_id = site.store_id("SH005")
    changed = site.api.patch(
        HQ,
        f"/api/v1/stores/{store_id}",
        json={
            "wecom_contact_qr_url": "https://wework.example.cn/qr/SH005",
            "community_qr_url": "https://wework.example.cn/group/SH005",
        },
    )
    assert changed.status_code == 200, changed.get_json()
    code = site.new_code(kind="store", store_id=store_id)
    refusals: list[str] = []
    page = open_page(code, refusals=refusals, **_granted(NEAR_SH001))
    page.wait_for_selector("#contact-link:not([hidden])")
    assert page.get_attribute("#contact-link", "href") == "https://wework.example.cn/qr/SH005"
    assert page.get_attribute("#group-link", "href") == "https://wework.example.cn/group/SH005"
    assert page.is_hidden("#contact-img") and page.is_hidden("#group-img")
    assert refusals and all("img-src" in text for text in refusals)  # the CSP held
    _shot(page, "store-qr-as-links", site)


def test_hostile_store_names_are_shown_as_text(open_page, site):
    store_id = site.store_id("SH004")
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    changed = site.api.patch(HQ, f"/api/v1/stores/{store_id}", json={"name": hostile})
    assert changed.status_code == 200, changed.get_json()
    code = site.new_code(kind="store", store_id=store_id)

    page = open_page(code, **_granted(NEAR_SH001))
    assert page.inner_text("#store-name") == hostile
    assert page.evaluate("window.pwned") is None
    assert page.query_selector("#store-name img, #store-name script") is None
    _shot(page, "store-hostile-name", site)


# --- the position -------------------------------------------------------------------------


def test_location_denied_offers_retry_and_fallback_then_routes_once_allowed(open_page, site):
    page = open_page("stride-lbs")  # no permission granted: the browser refuses
    assert page.get_attribute("#app", "data-message") == "denied"
    text = _visible_text(page)
    assert "无法获取您的位置" in text and "允许定位后重试" in text
    assert page.is_visible("#retry")
    assert page.get_attribute("#fallback", "href") == "https://stride.example.cn/stores"
    _shot(page, "location-denied", site)
    assert site.scans_of("stride-lbs")[-1].lat is None  # recorded, for attribution

    page.context.grant_permissions(["geolocation"])
    page.context.set_geolocation(NEAR_SH001)
    page.click("#retry")
    _settled(page)
    page.wait_for_selector("[data-screen='store']:not([hidden])")
    assert "Stride 上海南京西路店" in page.inner_text("#store-name")


def test_location_denied_on_a_store_code_still_shows_its_store(open_page, site):
    page = open_page("sh001-desk")
    assert page.get_attribute("#app", "data-shown") == "store"
    assert "没有获取到您的位置" in page.inner_text("#store-notice")
    assert page.inner_text("#retry") == "重新定位"
    assert "Stride 上海南京西路店" in page.inner_text("#store-name")
    assert page.inner_text("#store-distance") == ""
    _shot(page, "store-without-position", site)


def test_no_store_in_range_offers_the_codes_fallback(open_page, site):
    page = open_page("stride-lbs", **_granted(URUMQI))
    assert page.get_attribute("#app", "data-message") == "none"
    assert "附近暂无门店" in _visible_text(page)
    assert page.get_attribute("#fallback", "href") == "https://stride.example.cn/stores"
    _shot(page, "no-store-in-range", site)
    assert site.scans_of("stride-lbs")[-1].outcome == "fallback_url"


def test_no_store_in_range_and_no_fallback(open_page, site):
    code = site.new_code(kind="lbs")
    page = open_page(code, **_granted(URUMQI))
    text = _visible_text(page)
    assert "附近暂无门店" in text and "查看全部门店" not in text
    assert page.is_hidden("#fallback")


def test_inside_wechat_without_a_jssdk_signature_the_browser_position_is_used(open_page, site):
    asked = []
    page = open_page(
        "stride-lbs",
        user_agent=WECHAT_UA,
        setup=lambda p: p.on(
            "request", lambda r: asked.append(r.url) if "jssdk-config" in r.url else None
        ),
        **_granted(NEAR_SH001),
    )
    assert asked, "the page asked the backend for a JS-SDK signature"
    assert "Stride 上海南京西路店" in page.inner_text("#store-name")
    # The vendored JS-SDK loads under the page's CSP and defines wx.
    page.add_script_tag(url=page.get_attribute("#app", "data-jssdk-url"))
    assert page.evaluate("typeof wx.config === 'function' && typeof wx.getLocation")
    _shot(page, "wechat-fallback-to-browser-position", site)


def test_an_oauth_redirect_code_is_posted_once_and_dropped_from_the_url(open_page, site):
    posted = []
    page = open_page(
        "stride-lbs",
        query="?code=OAUTH-CODE-1&state=s1&utm=x",
        setup=lambda p: p.on(
            "request",
            lambda r: posted.append(r.post_data_json) if r.url.endswith("/api/v1/scans") else None,
        ),
        **_granted(NEAR_SH001),
    )
    assert posted and posted[0]["oauth_code"] == "OAUTH-CODE-1"
    assert page.evaluate("location.search") == "?utm=x"


# --- the code and the server --------------------------------------------------------------


def test_expired_inactive_and_unknown_codes(open_page, site):
    expired = site.new_code(
        kind="lbs",
        valid_from=(utcnow() - timedelta(days=30)).isoformat(),
        valid_until=(utcnow() - timedelta(days=2)).isoformat(),
        fallback_url="https://stride.example.cn/stores",
    )
    page = open_page(expired, **_granted(NEAR_SH001))
    assert page.get_attribute("#app", "data-message") == "gone"
    text = _visible_text(page)
    expected_day = (utcnow() - timedelta(days=2)).astimezone(ZoneInfo("Asia/Shanghai")).date()
    assert "二维码已失效" in text and f"已于 {expected_day} 过期" in text
    assert page.get_attribute("#fallback", "href") == "https://stride.example.cn/stores"
    _shot(page, "code-expired", site)
    assert site.scans_of(expired)[-1].outcome == "expired"  # the refusal is recorded

    inactive = site.new_code(kind="lbs")
    with site.session() as session, transaction(session):
        session.execute(update(ScanCode).where(ScanCode.code == inactive).values(active=False))
    page = open_page(inactive, **_granted(NEAR_SH001))
    assert "这个二维码已停用" in _visible_text(page)
    assert page.is_hidden("#fallback") and page.is_hidden("#retry")
    _shot(page, "code-inactive", site)

    not_yet = site.new_code(kind="lbs", valid_from=(utcnow() + timedelta(days=3)).isoformat())
    page = open_page(not_yet, **_granted(NEAR_SH001))
    assert "活动尚未开始" in _visible_text(page)

    response = page.goto(f"{site.base}/s/no-such-code")
    assert response.status == 404
    _settled(page)
    assert "无法识别的二维码" in _visible_text(page)
    _shot(page, "code-unknown", site)


def test_network_error_then_retry(open_page, site):
    def drop(page):
        page.route("**/api/v1/scans", lambda route: route.abort("connectionreset"))

    page = open_page("stride-lbs", setup=drop, **_granted(NEAR_SH001))
    assert page.get_attribute("#app", "data-message") == "network"
    assert "网络连接失败" in _visible_text(page) and page.is_visible("#retry")
    _shot(page, "network-error", site)
    page.unroute("**/api/v1/scans")
    page.click("#retry")
    page.wait_for_selector("[data-screen='store']:not([hidden])")
    assert "Stride 上海南京西路店" in page.inner_text("#store-name")


def test_server_error_from_a_proxy_then_retry(open_page, site):
    def bad_gateway(page):
        page.route(
            "**/api/v1/scans",
            lambda route: route.fulfill(
                status=502, content_type="text/html", body="<h1>502 Bad Gateway</h1>"
            ),
        )

    page = open_page("stride-lbs", setup=bad_gateway, **_granted(NEAR_SH001))
    assert page.get_attribute("#app", "data-message") == "server"
    assert "服务暂时不可用" in _visible_text(page)
    assert page.get_attribute("#fallback", "href") == "https://stride.example.cn/stores"
    _shot(page, "server-error", site)
    page.unroute("**/api/v1/scans")
    page.click("#retry")
    page.wait_for_selector("[data-screen='store']:not([hidden])")


def test_rate_limited_scan_shows_when_to_retry(open_page, site):
    code = site.new_code(kind="lbs", fallback_url="https://stride.example.cn/stores")
    client = site.app.test_client()
    for _ in range(PER_CODE_LIMIT):  # the code's whole allowance, from another address
        client.post("/api/v1/scans", json={"code": code}, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    page = open_page(code, **_granted(NEAR_SH001))
    assert page.get_attribute("#app", "data-message") == "rate_limited"
    text = _visible_text(page)
    assert "扫码的人太多了" in text and re.search(r"请 \d+ 秒后再试", text)
    assert page.is_disabled("#retry")
    _shot(page, "rate-limited", site)


def test_without_javascript_the_page_says_what_to_do(open_page, site):
    page = open_page("stride-lbs", wait=False, java_script_enabled=False)
    text = page.inner_text("body")
    assert "请开启 JavaScript" in text
    assert page.get_attribute("noscript a", "href") == "https://stride.example.cn/stores"
    assert "正在获取您的位置" not in text  # no spinner that never ends
    _shot(page, "no-javascript", site)


# --- the WeCom 「联系我」 QR of the code ------------------------------------------------------


def test_a_guide_codes_wecom_contact_way_qr_is_the_one_shown(open_page, site, fake_wecom):
    """Last in the module: it configures WeCom for the site's brand, and undoes it."""
    from guideapp.org.models import Staff
    from guideapp.wecom.models import WecomConfig, WecomContactWay
    from tests import wecom_helpers as w
    from tests.conftest import GUIDE
    from tests.test_jobs import run_jobs

    fake_wecom.add_corp(w.CORP_ID, w.CONTACT_SECRET, w.AGENT_ID, w.AGENT_SECRET)
    fake_wecom.add_user(w.CORP_ID, "zhang", "张导购")
    w.configure(site.api, HQ)
    try:
        with site.session() as session, transaction(session):
            guide = session.scalar(select(Staff).where(Staff.phone == GUIDE))
            guide.wecom_userid, guide_id = "zhang", guide.id
        code = site.new_code(kind="guide", guide_id=guide_id)
        run_jobs(site.app)
        with site.session() as session:
            qr = session.scalar(
                select(WecomContactWay.qr_code)
                .join(ScanCode, ScanCode.id == WecomContactWay.code_id)
                .where(ScanCode.code == code)
            )
        assert qr and qr.startswith(fake_wecom.url)

        page = open_page(code, **_granted(NEAR_SH001))
        assert page.get_attribute("#app", "data-shown") == "store"
        assert page.get_attribute("#contact-img", "src") == qr
        # The image arrives after the page settles: wait for it (late on a loaded machine).
        page.wait_for_function(
            "() => { const i = document.querySelector('#contact-img'); return i && i.complete; }",
            timeout=10_000,
        )
        assert page.eval_on_selector("#contact-img", "img => img.complete && img.naturalWidth > 0")
        assert "长按识别二维码，添加导购企业微信" in _visible_text(page)
        _shot(page, "store-wecom-contact-way", site)
    finally:
        with site.session() as session, transaction(session):
            session.execute(update(Staff).where(Staff.phone == GUIDE).values(wecom_userid=None))
            session.query(WecomContactWay).delete()
            session.query(WecomConfig).delete()
