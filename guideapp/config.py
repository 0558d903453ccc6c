"""Settings from the environment, with safe defaults for the embedded demo."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _jobs_url() -> str:
    """Where the job queue lives: GUIDEAPP_JOBS_URL, else GUIDEAPP_REDIS_URL, else a SQLite
    file beside the demo database (no other service needed under `make run`)."""
    return (
        os.environ.get("GUIDEAPP_JOBS_URL")
        or os.environ.get("GUIDEAPP_REDIS_URL")
        or f"sqlite:///{PROJECT_ROOT / 'instance' / 'jobs.db'}"
    )


# A single-tenant deployment may give its WeChat apps here instead of through the API
# (docs/wechat.md): they apply to the tenant GUIDEAPP_WECHAT_TENANT names (its slug), field
# by field where HQ stored nothing.
WECHAT_ENV_FIELDS = (
    "mp_appid",
    "mp_secret",
    "oa_appid",
    "oa_secret",
)


def _wechat_env() -> dict:
    values = {
        name: os.environ[f"GUIDEAPP_WECHAT_{name.upper()}"]
        for name in WECHAT_ENV_FIELDS
        if os.environ.get(f"GUIDEAPP_WECHAT_{name.upper()}")
    }
    tenant = os.environ.get("GUIDEAPP_WECHAT_TENANT")
    return {"tenant": tenant, **values} if tenant and values else {}


class Config:
    """Defaults are for the demo on one laptop; production sets GUIDEAPP_* variables."""

    DATABASE_URL = os.environ.get(
        "GUIDEAPP_DATABASE_URL", f"sqlite:///{PROJECT_ROOT / 'instance' / 'guideapp.db'}"
    )
    SECRET_KEY = os.environ.get("GUIDEAPP_SECRET_KEY", "demo-only-secret-change-me-in-production")
    # "production" refuses demo settings at start (guideapp/security.py); anything else is
    # the demo, and says so in its log.
    ENV_NAME = os.environ.get("GUIDEAPP_ENV", "demo")
    # Browser origins allowed to call the API (CORS), space-separated; "-" for none.
    ALLOWED_ORIGINS = os.environ.get("GUIDEAPP_ALLOWED_ORIGINS", "").split()
    # Reverse proxies in front of gunicorn that set X-Forwarded-For/-Proto/-Host (TLS ends
    # there). 0: none, the headers are ignored (a client could forge them); behind one nginx
    # or load balancer, 1, so per-address login limits see the real client.
    PROXY_HOPS = _env_int("GUIDEAPP_PROXY_HOPS", 0)
    DEFAULT_TIMEZONE = os.environ.get("GUIDEAPP_DEFAULT_TIMEZONE", "Asia/Shanghai")

    ACCESS_TOKEN_TTL_SECONDS = _env_int("GUIDEAPP_ACCESS_TOKEN_TTL", 15 * 60)
    REFRESH_TOKEN_TTL_SECONDS = _env_int("GUIDEAPP_REFRESH_TOKEN_TTL", 30 * 24 * 3600)
    # A member's session on member-facing pages (auth/member_login.py): not revocable, so
    # short; the mini-program signs in again with a fresh wx.login() code.
    MEMBER_TOKEN_TTL_SECONDS = _env_int("GUIDEAPP_MEMBER_TOKEN_TTL", 2 * 3600)
    LOGIN_WINDOW_SECONDS = _env_int("GUIDEAPP_LOGIN_WINDOW", 15 * 60)
    LOGIN_MAX_FAILURES_PER_PHONE = _env_int("GUIDEAPP_LOGIN_MAX_FAILURES_PER_PHONE", 5)
    LOGIN_MAX_FAILURES_PER_ADDRESS = _env_int("GUIDEAPP_LOGIN_MAX_FAILURES_PER_ADDRESS", 30)
    # Per phone from all addresses together: only a guess spread over many addresses meets it.
    LOGIN_MAX_FAILURES_PER_PHONE_ANYWHERE = _env_int(
        "GUIDEAPP_LOGIN_MAX_FAILURES_PER_PHONE_ANYWHERE", 100
    )
    IDEMPOTENCY_KEY_TTL_SECONDS = _env_int("GUIDEAPP_IDEMPOTENCY_TTL", 24 * 3600)
    LOG_LEVEL = os.environ.get("GUIDEAPP_LOG_LEVEL", "INFO")
    # Statements slower than this are logged (SQL and time, never parameters); 0: off.
    SLOW_QUERY_MS = _env_int("GUIDEAPP_SLOW_QUERY_MS", 500)
    # Hot standbys (PostgreSQL streaming replication) that may answer sync pulls and
    # read-only lists, space- or comma-separated URLs; none by default (docs/deploy.md).
    REPLICA_URLS = os.environ.get("GUIDEAPP_REPLICA_URLS", "").replace(",", " ").split()
    # Rendered inbox pages each worker keeps (changelog/pages.py); 0 switches it off.
    INBOX_CACHE_BYTES = _env_int("GUIDEAPP_INBOX_CACHE_BYTES", 64 * 1024 * 1024)
    # Rendered GET /me answers each worker keeps (about 1 KB each); 0 switches it off.
    ME_CACHE_BYTES = _env_int("GUIDEAPP_ME_CACHE_BYTES", 16 * 1024 * 1024)
    # Channel codes: QR images encode <PUBLIC_BASE_URL>/s/<code>, the landing page
    # (scans/landing.py). Unset, the URL the API was called on stands in (right under
    # `make run` on any port; behind a proxy, set it). GUIDEAPP_SCAN_BASE_URL, the older
    # name, is the whole prefix ending in /s/ and still works when the new one is unset.
    PUBLIC_BASE_URL = os.environ.get("GUIDEAPP_PUBLIC_BASE_URL") or None
    SCAN_BASE_URL = os.environ.get("GUIDEAPP_SCAN_BASE_URL") or None
    # Where the landing page may load images from (its CSP img-src, besides itself): the
    # stores' WeCom contact and group QR images live on WeChat's image hosts, and the
    # JS-SDK reports to open.weixin.qq.com. Space-separated CSP sources.
    LANDING_IMAGE_SOURCES = os.environ.get(
        "GUIDEAPP_LANDING_IMAGE_SOURCES", "https://*.qpic.cn https://open.weixin.qq.com"
    )
    # Public scan endpoint's fixed-window limits.
    SCAN_RATE_WINDOW_SECONDS = _env_int("GUIDEAPP_SCAN_RATE_WINDOW", 60)
    SCAN_RATE_PER_CODE = _env_int("GUIDEAPP_SCAN_RATE_PER_CODE", 6000)
    SCAN_RATE_PER_ADDRESS = _env_int("GUIDEAPP_SCAN_RATE_PER_ADDRESS", 60)
    # WeChat (guideapp/wechat, docs/wechat.md): the hosts wechatpy calls (tests: a fake), the
    # Fernet key(s) stored app secrets are encrypted with, and the call timeout.
    WECHAT_API_BASE = os.environ.get("GUIDEAPP_WECHAT_API_BASE", "https://api.weixin.qq.com")
    WECHAT_OAUTH_BASE = os.environ.get("GUIDEAPP_WECHAT_OAUTH_BASE", "https://open.weixin.qq.com")
    WECHAT_SECRETS_KEY = os.environ.get("GUIDEAPP_WECHAT_SECRETS_KEY")
    WECHAT_TIMEOUT_SECONDS = _env_float("GUIDEAPP_WECHAT_TIMEOUT", 5.0)
    # Where wechatpy keeps tokens and tickets for every worker (wechat/clients.py make_storage):
    # Redis, else PostgreSQL (the main database), else a SQLite file of its own.
    WECHAT_CACHE_URL = (
        os.environ.get("GUIDEAPP_WECHAT_CACHE_URL") or os.environ.get("GUIDEAPP_REDIS_URL") or ""
    )
    WECHAT_CACHE_SQLITE_URL = f"sqlite:///{PROJECT_ROOT / 'instance' / 'wechat-cache.db'}"
    WECHAT_ENV = _wechat_env()
    # The mini-program page a channel code's mini-program code opens, unless HQ set one.
    WECHAT_MP_CODE_PAGE = os.environ.get("GUIDEAPP_WECHAT_MP_CODE_PAGE", "pages/scan/index")
    UPLOAD_DIR = os.environ.get("GUIDEAPP_UPLOAD_DIR", str(PROJECT_ROOT / "instance" / "uploads"))
    # Hostile input (guideapp/untrusted.py, web.py): a body larger than its limit is a 413;
    # views that take files (uploads, imports) have the larger one. A URL (path and query)
    # longer than MAX_URL_LENGTH is a JSON 414; gunicorn's own limits sit above it (README).
    MAX_CONTENT_LENGTH = _env_int("GUIDEAPP_MAX_BODY_BYTES", 4 * 1024 * 1024)
    MAX_UPLOAD_BYTES = _env_int("GUIDEAPP_MAX_UPLOAD_BYTES", 110 * 1024 * 1024)  # video + room
    MAX_URL_LENGTH = _env_int("GUIDEAPP_MAX_URL_LENGTH", 4096)
    MAX_JSON_DEPTH = _env_int("GUIDEAPP_MAX_JSON_DEPTH", 32)
    # Times of facts (orders, refunds, joins; guideapp/moments.py): at most this far ahead of
    # the server's clock, and never before the floor (YYYY-MM-DD, UTC).
    MAX_CLOCK_SKEW_MINUTES = _env_int("GUIDEAPP_MAX_CLOCK_SKEW_MINUTES", 5)
    EARLIEST_FACT_DATE = os.environ.get("GUIDEAPP_EARLIEST_FACT_DATE", "2000-01-01")
    # Member / order imports (members/import_rows.py): rows below the header, and what an
    # .xlsx may inflate to (its zip's declared uncompressed sizes, checked before reading).
    IMPORT_MAX_ROWS = _env_int("GUIDEAPP_IMPORT_MAX_ROWS", 200_000)
    IMPORT_MAX_XLSX_MB = _env_int("GUIDEAPP_IMPORT_MAX_XLSX_MB", 100)
    IMPORT_BATCH_ROWS = _env_int("GUIDEAPP_IMPORT_BATCH_ROWS", 5000)  # rows per import checkpoint
    # Members per checkpoint of a bulk coupon issue (one set-based batch, one commit).
    COUPON_ISSUE_BATCH = _env_int("GUIDEAPP_COUPON_ISSUE_BATCH", 5000)

    # Secrets at rest (guideapp/secretbox.py): comma-separated Fernet keys, the first seals;
    # unset, no secret can be stored (503).
    WECHAT_SECRETS_KEY = os.environ.get("GUIDEAPP_WECHAT_SECRETS_KEY")
    # WeChat Pay v3 notifications (guideapp/wechatpay, docs/wechat-pay.md): the public base
    # of the notify URL HQ gives WeChat, how far a notification's timestamp may be from our
    # clock, and the largest notification body read.
    WECHATPAY_NOTIFY_BASE_URL = os.environ.get(
        "GUIDEAPP_WECHATPAY_NOTIFY_BASE_URL",
        os.environ.get("GUIDEAPP_PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
    )
    WECHATPAY_TIMESTAMP_WINDOW_SECONDS = _env_int("GUIDEAPP_WECHATPAY_TIMESTAMP_WINDOW", 300)
    WECHATPAY_MAX_NOTIFY_BYTES = _env_int("GUIDEAPP_WECHATPAY_MAX_NOTIFY_BYTES", 64 * 1024)
    # A single-tenant deployment's one merchant from the environment (notify key "env");
    # see docs/wechat-pay.md. Empty MCHID: none.
    WECHATPAY_ENV_MERCHANT = {
        "tenant": os.environ.get("GUIDEAPP_WECHATPAY_TENANT", ""),
        "mchid": os.environ.get("GUIDEAPP_WECHATPAY_MCHID", ""),
        "apiv3_key": os.environ.get("GUIDEAPP_WECHATPAY_APIV3_KEY", ""),
        "public_key_id": os.environ.get("GUIDEAPP_WECHATPAY_PUBLIC_KEY_ID", ""),
        "public_key": os.environ.get("GUIDEAPP_WECHATPAY_PUBLIC_KEY", ""),
        "public_key_file": os.environ.get("GUIDEAPP_WECHATPAY_PUBLIC_KEY_FILE", ""),
        "appids": os.environ.get("GUIDEAPP_WECHATPAY_APPIDS", ""),
        "store_code": os.environ.get("GUIDEAPP_WECHATPAY_STORE_CODE", ""),
    }

    # WeCom (guideapp/wecom, docs/wecom.md): its API host (tests: the fake), the public base
    # of the callback URL HQ enters in the WeCom console, how far a callback's timestamp may
    # be from our clock, the largest callback read, callbacks per tenant URL per minute, and
    # how stored events are retried (the first retry after RETRY s, doubling, dead after
    # MAX_ATTEMPTS).
    WECOM_API_BASE = os.environ.get("GUIDEAPP_WECOM_API_BASE", "https://qyapi.weixin.qq.com")
    WECOM_TIMEOUT_SECONDS = _env_float("GUIDEAPP_WECOM_TIMEOUT", 5.0)
    WECOM_CALLBACK_BASE_URL = os.environ.get(
        "GUIDEAPP_WECOM_CALLBACK_BASE_URL",
        os.environ.get("GUIDEAPP_PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
    )
    WECOM_TIMESTAMP_WINDOW_SECONDS = _env_int("GUIDEAPP_WECOM_TIMESTAMP_WINDOW", 300)
    WECOM_MAX_CALLBACK_BYTES = _env_int("GUIDEAPP_WECOM_MAX_CALLBACK_BYTES", 64 * 1024)
    WECOM_CALLBACK_RATE_PER_MINUTE = _env_int("GUIDEAPP_WECOM_CALLBACK_RATE", 60_000)
    WECOM_EVENT_MAX_ATTEMPTS = _env_int("GUIDEAPP_WECOM_EVENT_MAX_ATTEMPTS", 8)
    WECOM_EVENT_RETRY_SECONDS = _env_float("GUIDEAPP_WECOM_EVENT_RETRY", 10.0)
    WECOM_TRANSFER_POLL_SECONDS = _env_float("GUIDEAPP_WECOM_TRANSFER_POLL", 1800.0)
    WECOM_TRANSFER_RETRY_SECONDS = _env_float("GUIDEAPP_WECOM_TRANSFER_RETRY", 30.0)
    WECOM_TRANSFER_MAX_ATTEMPTS = _env_int("GUIDEAPP_WECOM_TRANSFER_MAX_ATTEMPTS", 8)

    # Jobs (guideapp/jobs, docs/jobs.md): the queue, its workers, retries and leases.
    JOBS_URL = _jobs_url()  # redis://host:6379/0 or sqlite:///path/jobs.db
    JOBS_NAME = os.environ.get("GUIDEAPP_JOBS_NAME", "guideapp")  # queue name (key prefix)
    JOBS_WORKERS = _env_int("GUIDEAPP_JOBS_WORKERS", 2)  # threads per worker process
    JOBS_MAX_ATTEMPTS = _env_int("GUIDEAPP_JOBS_MAX_ATTEMPTS", 5)
    JOBS_RETRY_DELAY_SECONDS = _env_float("GUIDEAPP_JOBS_RETRY_DELAY", 2.0)  # doubles per try
    # A running job with no checkpoint for this long is taken to be orphaned (its worker
    # died) and is run again from its last checkpoint; longer than any one unit of work.
    JOBS_LEASE_SECONDS = _env_float("GUIDEAPP_JOBS_LEASE", 300.0)
    JOBS_RECOVER_EVERY_SECONDS = _env_float("GUIDEAPP_JOBS_RECOVER_EVERY", 60.0)
    JOBS_POLL_MAX_SECONDS = _env_float("GUIDEAPP_JOBS_POLL_MAX", 1.0)  # idle queue polling
    # GET /metrics (guideapp/metrics.py): a bearer token for the scraper; unset, only a
    # scraper on this machine (loopback) is answered.
    METRICS_TOKEN = os.environ.get("GUIDEAPP_METRICS_TOKEN") or None
    PUBLISH_BATCH_STORES = _env_int("GUIDEAPP_PUBLISH_BATCH_STORES", 200)  # stores per checkpoint

    # flask-smorest / OpenAPI
    API_TITLE = "guideapp"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_SWAGGER_UI_URL = "/docs-assets/"  # served from the swagger-ui-bundle wheel, no CDN
    API_SPEC_OPTIONS = {
        "info": {
            "description": "Backend of the store-guide mini-program and the HQ / manager consoles."
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                # Member-facing pages: POST /api/v1/wechat/me/session gives the token.
                "memberToken": {"type": "apiKey", "in": "header", "name": "X-Member-Token"},
            }
        },
        "security": [{"bearerAuth": []}],
    }

    def __init__(self, **overrides):
        for key, value in overrides.items():
            setattr(self, key, value)
