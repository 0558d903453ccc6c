"""What production refuses to start with, what every response says about itself (headers),
and which browser origins may call the API (CORS)."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

log = logging.getLogger(__name__)

DEMO_SECRET = "demo-only-secret-change-me-in-production"
MIN_SECRET_BYTES = 32
HSTS = "max-age=31536000; includeSubDomains"
# What a browser client may send and read across origins (bearer tokens, never cookies).
CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "X-Request-ID",
]
CORS_RESPONSE_HEADERS = ["ETag", "Location", "X-Request-ID", "Retry-After"]


def production_refusals(config) -> list[str]:
    """Why this configuration must not serve real members (empty: it may)."""
    refusals = []
    secret = config.get("SECRET_KEY") or ""
    if not secret:
        refusals.append("GUIDEAPP_SECRET_KEY is missing.")
    elif secret == DEMO_SECRET:
        refusals.append("GUIDEAPP_SECRET_KEY is the demo's published secret.")
    elif len(secret.encode()) < MIN_SECRET_BYTES:
        refusals.append(f"GUIDEAPP_SECRET_KEY is shorter than {MIN_SECRET_BYTES} bytes.")
    if str(config.get("DATABASE_URL", "")).startswith("sqlite"):
        refusals.append("GUIDEAPP_DATABASE_URL is SQLite: production runs on PostgreSQL.")
    if not config.get("ALLOWED_ORIGINS"):
        refusals.append(
            "GUIDEAPP_ALLOWED_ORIGINS is empty: list the consoles' origins "
            "(space-separated https://... ; '-' for none: API clients only)."
        )
    return refusals


def check_mode(app: Flask) -> None:
    """Production refuses to start on a bad configuration; the demo says it is one."""
    if app.config.get("ENV_NAME") == "production":
        refusals = production_refusals(app.config)
        if refusals:
            raise RuntimeError("guideapp refuses to start in production: " + " ".join(refusals))
        return
    log.warning(
        "DEMO MODE: demo secret and settings, not for real members "
        "(set GUIDEAPP_ENV=production; see docs/deploy.md)"
    )


def register_security(app: Flask) -> None:
    hops = int(app.config.get("PROXY_HOPS") or 0)
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )
    origins = [o for o in app.config.get("ALLOWED_ORIGINS") or [] if o != "-"]
    if origins:
        # Bearer tokens only: no cookies, so no credentials mode (a stolen origin gets nothing
        # a token holder does not already have).
        CORS(
            app,
            resources={r"/api/*": {"origins": origins}},
            supports_credentials=False,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_RESPONSE_HEADERS,
            max_age=600,
        )
    production = app.config.get("ENV_NAME") == "production"

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        if response.mimetype == "text/html":
            headers.setdefault("X-Frame-Options", "DENY")
            if "Content-Security-Policy" not in headers:
                headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        if (
            request.headers.get("Authorization")
            and response.mimetype == "application/json"
            and "Cache-Control" not in headers
        ):
            headers["Cache-Control"] = "no-store"
        if production:
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response
