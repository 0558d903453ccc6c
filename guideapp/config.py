"""Settings from the environment, with safe defaults for the embedded demo."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class Config:
    """Defaults are for the demo on one laptop; production sets GUIDEAPP_* variables."""

    DATABASE_URL = os.environ.get(
        "GUIDEAPP_DATABASE_URL", f"sqlite:///{PROJECT_ROOT / 'instance' / 'guideapp.db'}"
    )
    SECRET_KEY = os.environ.get("GUIDEAPP_SECRET_KEY", "demo-only-secret-change-me-in-production")
    DEFAULT_TIMEZONE = os.environ.get("GUIDEAPP_DEFAULT_TIMEZONE", "Asia/Shanghai")

    ACCESS_TOKEN_TTL_SECONDS = _env_int("GUIDEAPP_ACCESS_TOKEN_TTL", 15 * 60)
    REFRESH_TOKEN_TTL_SECONDS = _env_int("GUIDEAPP_REFRESH_TOKEN_TTL", 30 * 24 * 3600)
    LOGIN_WINDOW_SECONDS = _env_int("GUIDEAPP_LOGIN_WINDOW", 15 * 60)
    LOGIN_MAX_FAILURES_PER_PHONE = _env_int("GUIDEAPP_LOGIN_MAX_FAILURES_PER_PHONE", 5)
    LOGIN_MAX_FAILURES_PER_ADDRESS = _env_int("GUIDEAPP_LOGIN_MAX_FAILURES_PER_ADDRESS", 30)
    IDEMPOTENCY_KEY_TTL_SECONDS = _env_int("GUIDEAPP_IDEMPOTENCY_TTL", 24 * 3600)
    LOG_LEVEL = os.environ.get("GUIDEAPP_LOG_LEVEL", "INFO")
    # Rendered inbox pages each worker keeps (tasks/inbox_cache.py); 0 switches it off.
    INBOX_CACHE_BYTES = _env_int("GUIDEAPP_INBOX_CACHE_BYTES", 64 * 1024 * 1024)
    # Channel codes: the URL in each QR code, and the public scan endpoint's fixed-window limits.
    SCAN_BASE_URL = os.environ.get("GUIDEAPP_SCAN_BASE_URL", "http://127.0.0.1:8000/s/")
    SCAN_RATE_WINDOW_SECONDS = _env_int("GUIDEAPP_SCAN_RATE_WINDOW", 60)
    SCAN_RATE_PER_CODE = _env_int("GUIDEAPP_SCAN_RATE_PER_CODE", 6000)
    SCAN_RATE_PER_ADDRESS = _env_int("GUIDEAPP_SCAN_RATE_PER_ADDRESS", 60)
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
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        },
        "security": [{"bearerAuth": []}],
    }

    def __init__(self, **overrides):
        for key, value in overrides.items():
            setattr(self, key, value)
