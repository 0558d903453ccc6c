"""Channel codes, their QR images and statistics; the public scan endpoint."""

import marshmallow as ma
from flask import Response, current_app, request
from flask.views import MethodView

from guideapp.db import commit, utcnow
from guideapp import untrusted
from guideapp.extensions import Blueprint
from guideapp.scans import codes, counters, landing, qr, service, stats
from guideapp.scans import schemas as s
from guideapp.http import current_actor, db_session
from guideapp.wechat import service as wechat
from guideapp.wechat.schemas import JssdkConfigSchema, JssdkRequestSchema

blp = Blueprint(
    "scans",
    __name__,
    url_prefix="/api/v1",
    description="Channel codes (LBS, store, guide) and scan routing",
)


@blp.route("/codes")
class Codes(MethodView):
    @blp.arguments(s.CodeQueryArgsSchema, location="query")
    @blp.response(200, s.CodePageSchema)
    def get(self, args):
        """Codes I can see (HQ: the tenant; manager: the store; guide: their own)"""
        page = codes.list_codes(db_session(), actor=current_actor(), **args)
        page["items"] = [codes.present(c, landing.pages_base()) for c in page["items"]]
        return page

    @blp.arguments(s.CodeSchema)
    @blp.response(201, s.CodeSchema)
    def post(self, data):
        """Create a code (HQ: LBS, store, guide; manager: their store's store and guide codes)"""
        record = codes.create_code(db_session(), actor=current_actor(), data=data)
        return codes.present(record, landing.pages_base())


@blp.route("/codes/<code_id>")
class CodeById(MethodView):
    @blp.response(200, s.CodeSchema)
    def get(self, code_id):
        """One code"""
        record = codes.get_code(db_session(), actor=current_actor(), code_id=code_id)
        return codes.present(record, landing.pages_base())

    @blp.arguments(s.CodeUpdateSchema)
    @blp.response(200, s.CodeSchema)
    def patch(self, data, code_id):
        """Edit a code: channel, tags, validity, fallback; `active: false` switches it off"""
        record = codes.update_code(db_session(), actor=current_actor(), code_id=code_id, data=data)
        return codes.present(record, landing.pages_base())


def _qr(code_id: str, kind: str, mimetype: str) -> Response:
    record = codes.get_code(db_session(), actor=current_actor(), code_id=code_id)
    image = qr.qr_image(codes.code_url(record, landing.pages_base()), kind)
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


@blp.route("/codes/<code_id>/wxacode.png")
class CodeMiniProgramCode(MethodView):
    @blp.writes_on_get  # made once by WeChat, then kept (its storage key on the code)
    @blp.doc(
        responses={
            "200": {
                "description": "The mini-program code (WeChat's getwxacodeunlimit, scene = the "
                "code), PNG with a transparent background",
                "content": {"image/png": {}},
            }
        }
    )
    @blp.alt_response(409, description="No mini-program configured, or WeChat refused the page")
    @blp.alt_response(503, description="WeChat is busy or cannot be reached; try again")
    def get(self, code_id):
        """The code's mini-program code: opens the brand's mini-program page with the code"""
        record = codes.get_code(db_session(), actor=current_actor(), code_id=code_id)
        image, mimetype = wechat.mini_program_code(db_session(), record.tenant_id, record.code)
        return Response(
            image,
            mimetype=mimetype,
            headers={
                "Content-Disposition": f'inline; filename="{record.code}-wxacode.png"',
                "Cache-Control": "private, max-age=3600",
            },
        )


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


def _counted(schema: ma.Schema):
    """A `counted_first` hook: the request counts per address and per code. Only a body the
    view will take is counted; a refused one writes nothing (the view answers its 422)."""

    def count() -> None:
        try:
            data = schema.load(untrusted.loads(request.get_data()))
        except (ValueError, ma.ValidationError):  # JSON that can't be read, or isn't valid
            return
        _rate_limit(data["code"], request.remote_addr or "unknown")

    return count


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
    @blp.counted_first(_counted(s.ScanRequestSchema()))
    @blp.arguments(s.ScanRequestSchema)
    @blp.response(200, s.ScanAnswerSchema)
    @blp.alt_response(403, description="Code not valid yet")
    @blp.alt_response(404, description="Unknown code")
    @blp.alt_response(410, description="Expired or switched-off code")
    @blp.alt_response(422, description="Invalid fields, or WeChat refused a code")
    @blp.alt_response(429, description="Too many scans (see Retry-After)")
    @blp.alt_response(503, description="WeChat busy or unreachable: nothing written; retry")
    def post(self, data):
        """Scan a code (public): route to the nearest open store and its guide, attribute it"""
        address = request.remote_addr or "unknown"  # counted already: _counted
        return service.scan(db_session(), client_address=address, **data)


@blp.route("/public/wechat/jssdk-config")
class JssdkConfig(MethodView):
    @blp.public
    @blp.counted_first(_counted(JssdkRequestSchema()))
    @blp.arguments(JssdkRequestSchema)
    @blp.response(200, JssdkConfigSchema)
    @blp.alt_response(404, description="Unknown code, or wechat_not_configured")
    @blp.alt_response(429, description="Too many requests (see Retry-After)")
    @blp.alt_response(503, description="WeChat busy; try again")
    def post(self, data):
        """wx.config for a landing page inside WeChat (public): the scan code's brand's
        official account signs the page URL (only guideapp's own landing pages)"""
        session = db_session()
        tenant_id = service.tenant_of_code(session, data["code"])
        return wechat.jssdk_config(session, tenant_id, data["url"], pages_base=landing.pages_base())
