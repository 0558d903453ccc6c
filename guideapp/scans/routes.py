"""Channel codes, their QR images and statistics; the public scan endpoint."""

from flask import Response, current_app, request
from flask.views import MethodView

from guideapp.db import commit, utcnow
from guideapp.extensions import Blueprint
from guideapp.scans import codes, counters, qr, service, stats
from guideapp.scans import schemas as s
from guideapp.http import current_actor, db_session

blp = Blueprint(
    "scans",
    __name__,
    url_prefix="/api/v1",
    description="Channel codes (LBS, store, guide) and scan routing",
)


def _base_url() -> str:
    """What a code's URL starts with: <GUIDEAPP_PUBLIC_BASE_URL>/s/ (config.py), else the
    older GUIDEAPP_SCAN_BASE_URL prefix, else the address this request came to."""
    config = current_app.config
    if config.get("PUBLIC_BASE_URL"):
        return config["PUBLIC_BASE_URL"].rstrip("/") + "/s/"
    return config.get("SCAN_BASE_URL") or request.host_url.rstrip("/") + "/s/"


@blp.route("/codes")
class Codes(MethodView):
    @blp.arguments(s.CodeQueryArgsSchema, location="query")
    @blp.response(200, s.CodePageSchema)
    def get(self, args):
        """Codes I can see (HQ: the tenant; manager: the store; guide: their own)"""
        page = codes.list_codes(db_session(), actor=current_actor(), **args)
        page["items"] = [codes.present(c, _base_url()) for c in page["items"]]
        return page

    @blp.arguments(s.CodeSchema)
    @blp.response(201, s.CodeSchema)
    def post(self, data):
        """Create a code (HQ: LBS, store, guide; manager: their store's store and guide codes)"""
        record = codes.create_code(db_session(), actor=current_actor(), data=data)
        return codes.present(record, _base_url())


@blp.route("/codes/<code_id>")
class CodeById(MethodView):
    @blp.response(200, s.CodeSchema)
    def get(self, code_id):
        """One code"""
        record = codes.get_code(db_session(), actor=current_actor(), code_id=code_id)
        return codes.present(record, _base_url())

    @blp.arguments(s.CodeUpdateSchema)
    @blp.response(200, s.CodeSchema)
    def patch(self, data, code_id):
        """Edit a code: channel, tags, validity, fallback; `active: false` switches it off"""
        record = codes.update_code(db_session(), actor=current_actor(), code_id=code_id, data=data)
        return codes.present(record, _base_url())


def _qr(code_id: str, kind: str, mimetype: str) -> Response:
    record = codes.get_code(db_session(), actor=current_actor(), code_id=code_id)
    image = qr.qr_image(codes.code_url(record, _base_url()), kind)
    return Response(
        image,
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'inline; filename="{record.code}.{kind}"',
            "Cache-Control": "private, max-age=3600",
        },
    )


@blp.route("/codes/<code_id>/qr.png")
class CodeQrPng(MethodView):
    @blp.doc(responses={"200": {"description": "The QR code as PNG", "content": {"image/png": {}}}})
    def get(self, code_id):
        """The code's QR image (PNG)"""
        return _qr(code_id, "png", "image/png")


@blp.route("/codes/<code_id>/qr.svg")
class CodeQrSvg(MethodView):
    @blp.doc(
        responses={"200": {"description": "The QR code as SVG", "content": {"image/svg+xml": {}}}}
    )
    def get(self, code_id):
        """The code's QR image (SVG)"""
        return _qr(code_id, "svg", "image/svg+xml")


@blp.route("/codes/<code_id>/stats")
class CodeStats(MethodView):
    @blp.arguments(s.CodeStatsArgsSchema, location="query")
    @blp.response(200, s.StatsSchema)
    def get(self, args, code_id):
        """Scans, new members and bindings of one code, per day"""
        return stats.code_stats(db_session(), actor=current_actor(), code_id=code_id, **args)


@blp.route("/scans/stats")
class ScanStats(MethodView):
    @blp.arguments(s.StatsArgsSchema, location="query")
    @blp.response(200, s.StatsSchema)
    def get(self, args):
        """Scans, new members and bindings grouped by code, channel, store, guide and/or day"""
        return stats.scan_stats(db_session(), actor=current_actor(), **args)


def _rate_limit(code: str, address: str) -> None:
    """Counted in a transaction of its own, committed at once: the counter rows are hot."""
    config = current_app.config
    session = current_app.extensions["guideapp"]["sessionmaker"]()
    try:
        counters.hit(
            session,
            window_s=config["SCAN_RATE_WINDOW_SECONDS"],
            now=utcnow(),
            limits=[
                (f"addr:{address}", config["SCAN_RATE_PER_ADDRESS"]),
                (f"code:{code}", config["SCAN_RATE_PER_CODE"]),
            ],
        )
        commit(session)
    finally:
        session.rollback()
        session.close()


@blp.route("/scans")
class Scans(MethodView):
    @blp.public
    @blp.arguments(s.ScanRequestSchema)
    @blp.response(200, s.ScanAnswerSchema)
    @blp.alt_response(403, description="Code not valid yet")
    @blp.alt_response(404, description="Unknown code")
    @blp.alt_response(410, description="Expired or switched-off code")
    @blp.alt_response(429, description="Too many scans (see Retry-After)")
    def post(self, data):
        """Scan a code (public): route to the nearest open store and its guide, attribute it"""
        address = request.remote_addr or "unknown"
        _rate_limit(data["code"], address)
        return service.scan(db_session(), client_address=address, **data)
