"""The consumer's landing page a QR code opens: `GET /s/<code>` and its own assets.

The page (templates/landing.html, static/landing.js) asks for the position, posts the scan
to `POST /api/v1/scans` and shows where it was routed. Everything it loads comes from here:
no CDN, and a CSP that allows only this origin (plus the image hosts of the stores' QR
codes, config LANDING_IMAGE_SOURCES).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request

from guideapp.wechat import service as wechat
from guideapp.http import db_session
from guideapp.scans import service

STATIC = Path(__file__).parent / "static"
ASSETS = {"landing.js": "text/javascript", "landing.css": "text/css"}
JSSDK = STATIC / "vendor" / "weixin-js-sdk" / "index.js"

blp = Blueprint("landing", __name__, url_prefix="/s", template_folder="templates")


def pages_base() -> str:
    """What a code's URL starts with: <GUIDEAPP_PUBLIC_BASE_URL>/s/ (config.py), else the
    older GUIDEAPP_SCAN_BASE_URL prefix, else the address this request came to."""
    config = current_app.config
    if config.get("PUBLIC_BASE_URL"):
        return config["PUBLIC_BASE_URL"].rstrip("/") + "/s/"
    return config.get("SCAN_BASE_URL") or request.host_url.rstrip("/") + "/s/"


def oauth_redirect_url(code_row, request) -> str | None:
    """Where to send a visitor first to learn who they are (WeChat OAuth), or None.

    Inside WeChat, for a tenant with an official account: its snsapi_base authorize URL
    (silent, no consent screen), which comes back to this page with `?code=...&state=...`;
    the page posts that code as `oauth_code`. Not called when the URL already carries a
    `code` (a failed exchange must not loop). Any other browser stays anonymous.
    """
    if "micromessenger" not in request.user_agent.string.lower():
        return None
    query = request.query_string.decode("utf-8", "replace")
    page = pages_base() + code_row.code + (f"?{query}" if query else "")
    return wechat.oauth_authorize_url(db_session(), code_row.tenant_id, page, state="scan")


def _csp() -> str:
    images = current_app.config["LANDING_IMAGE_SOURCES"]
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        f"img-src 'self' data: {images}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


@blp.after_request
def _harden(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = _csp()
        response.headers["X-Frame-Options"] = "DENY"
        # The URL may carry a one-time OAuth code; the answer depends on the code's state.
        response.headers["Cache-Control"] = "no-store"
    return response


@blp.get("/<code>")
def page(code: str):
    found = service.landing_code(db_session(), code) if len(code) <= 40 else None
    if found is not None and "code" not in request.args:
        target = oauth_redirect_url(found["record"], request)
        if target:
            return redirect(target, 302)
    html = render_template(
        "landing.html",
        code=code,
        found=found,
        state=found["state"] if found else "unknown",
        fallback_url=_safe_url(found["fallback_url"]) if found else None,
        valid_until=(found["valid_until_local"] or "") if found else "",
        asset=_asset_url,
    )
    return Response(html, status=200 if found else 404, mimetype="text/html")


def _safe_url(url: str | None) -> str | None:
    """Only web links become buttons (a stored javascript: URL never runs)."""
    return url if url and url.startswith(("https://", "http://")) else None


@blp.get("/assets/<name>")
def asset(name: str):
    if name == "jweixin.js":
        return _served(_jssdk(), "text/javascript")
    if name not in ASSETS:
        abort(404)
    return _served((STATIC / name).read_bytes(), ASSETS[name])


def _served(body: bytes, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = (
        "public, max-age=31536000, immutable" if request.args.get("v") else "no-cache"
    )
    return response


@cache
def _jssdk() -> bytes:
    """The vendored CommonJS module run with a module object of its own (VENDORED.md)."""
    return (
        b"(function (module) {\n"
        + JSSDK.read_bytes()
        + b"\nwindow.wx = window.jWeixin = module.exports;\n})({ exports: {} });\n"
    )


@cache
def _version(name: str) -> str:
    body = _jssdk() if name == "jweixin.js" else (STATIC / name).read_bytes()
    return hashlib.sha256(body).hexdigest()[:12]


def _asset_url(name: str) -> str:
    """A versioned URL: cached for a year, a new file gets a new URL."""
    return f"/s/assets/{name}?v={_version(name)}"
