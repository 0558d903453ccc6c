"""HQ's WeChat Pay merchants, and the public notify URL WeChat Pay posts to."""

import logging

from flask import Response, current_app, request
from flask.views import MethodView

from guideapp.errors import TooLarge
from guideapp.extensions import Blueprint
from guideapp.http import current_actor, db_session, extension
from guideapp.wechatpay import schemas as s
from guideapp.wechatpay import service

blp = Blueprint(
    "wechatpay",
    __name__,
    url_prefix="/api/v1/wechat/pay",
    description="WeChat Pay v3: merchants (HQ) and payment / refund notifications",
)

NOTIFY_ENDPOINT = "wechatpay.Notify"
log = logging.getLogger(__name__)


def _present(merchant) -> dict:
    base = current_app.config["WECHATPAY_NOTIFY_BASE_URL"]
    return service.present(db_session(), merchant, base_url=base)


@blp.route("/merchants")
class Merchants(MethodView):
    @blp.arguments(s.MerchantArgsSchema, location="query")
    @blp.response(200, s.MerchantPageSchema)
    def get(self, args):
        """The tenant's WeChat Pay merchants (HQ); APIv3 keys are never returned"""
        page = service.list_merchants(db_session(), actor=current_actor(), **args)
        page["items"] = [_present(m) for m in page["items"]]
        return page

    @blp.arguments(s.MerchantCreateSchema)
    @blp.response(201, s.MerchantSchema)
    def post(self, data):
        """Add a merchant: mchid, APIv3 key (write-only), platform keys, store mapping (HQ)"""
        merchant = service.create_merchant(
            db_session(), actor=current_actor(), box=extension("secretbox"), data=data
        )
        return _present(merchant)


@blp.route("/merchants/<merchant_id>")
class MerchantById(MethodView):
    @blp.response(200, s.MerchantSchema)
    def get(self, merchant_id):
        """One merchant (HQ)"""
        return _present(
            service.get_merchant(db_session(), actor=current_actor(), merchant_id=merchant_id)
        )

    @blp.arguments(s.MerchantSchema)
    @blp.response(200, s.MerchantSchema)
    def put(self, data, merchant_id):
        """Replace a merchant's settings (HQ); without apiv3_key the stored key is kept"""
        merchant = service.update_merchant(
            db_session(),
            actor=current_actor(),
            box=extension("secretbox"),
            merchant_id=merchant_id,
            data=data,
        )
        return _present(merchant)


_NOTIFICATION_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "WeChat Pay's notification, exactly as sent (it is signed).",
                "properties": {
                    "id": {"type": "string"},
                    "create_time": {"type": "string"},
                    "event_type": {"type": "string", "example": "TRANSACTION.SUCCESS"},
                    "resource_type": {"type": "string", "example": "encrypt-resource"},
                    "summary": {"type": "string"},
                    "resource": {"type": "object"},
                },
            }
        }
    },
}
_REFUSALS = {
    400: "Malformed, undecryptable or unreadable notification",
    401: "Missing headers, a bad signature, an unknown serial or a timestamp outside the window",
    403: "A notification for another merchant or app",
    404: "No active merchant at this notify URL; a refund of a payment not recorded yet",
    409: "A payment or refund recorded before with another amount",
    413: "Body too large",
    422: "A notification we cannot record (e.g. not CNY, a refund beyond what was paid)",
    503: "The database is busy; WeChat retries",
}


@blp.route("/notify/<merchant_key>")
class Notify(MethodView):
    @blp.public
    @blp.doc(
        requestBody=_NOTIFICATION_BODY,
        responses={
            "204": {"description": "Accepted (also for a retry of one already recorded)."},
            **{
                str(code): {
                    "description": f"FAIL: {why}. WeChat retries.",
                    "content": {"application/json": {"schema": s.FailSchema}},
                }
                for code, why in _REFUSALS.items()
            },
        },
    )
    def post(self, merchant_key):
        """WeChat Pay v3 notification (public; signed by WeChat): payments become members and
        orders, refunds claw back. `merchant_key` is the merchant's id (its notify_url)"""
        config = current_app.config
        limit = config["WECHATPAY_MAX_NOTIFY_BYTES"]
        if (request.content_length or 0) > limit or len(request.get_data(cache=True)) > limit:
            raise TooLarge(f"A notification is at most {limit} bytes.")
        service.receive_notification(
            db_session(),
            merchant_key=merchant_key,
            headers=request.headers,
            body=request.get_data(cache=True),
            box=extension("secretbox"),
            env=config["WECHATPAY_ENV_MERCHANT"],
            window_s=config["WECHATPAY_TIMESTAMP_WINDOW_SECONDS"],
            max_depth=config["MAX_JSON_DEPTH"],
        )
        return Response(status=204)


@blp.after_request
def _fail_shape(response: Response) -> Response:
    """WeChat reads a refusal as {"code": "FAIL", "message": ...}: the notify URL answers
    every error (ours, the body limit, hostile headers) in that shape, status unchanged."""
    if request.endpoint != NOTIFY_ENDPOINT or response.status_code < 400:
        return response
    payload = response.get_json(silent=True) if response.is_json else None
    message = _fail_message(payload) if isinstance(payload, dict) else None
    log.warning(
        "wechat pay notification refused",
        extra={"status": response.status_code, "reason": message, "path": request.path},
    )
    response.set_data(
        current_app.json.dumps({"code": "FAIL", "message": message or response.status})
    )
    response.mimetype = "application/json"
    return response


def _fail_message(payload: dict) -> str | None:
    """The error's message with its field problems, which the FAIL shape has no place for."""
    problems = list(_field_problems(payload.get("errors") or {}, ""))
    message = payload.get("message")
    if problems:
        return f"{message} ({'; '.join(problems)})"
    return message


def _field_problems(errors, where: str):
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from _field_problems(value, f"{where}.{key}" if where else str(key))
    elif isinstance(errors, list):
        for value in errors:
            yield from _field_problems(value, where)
    else:
        yield f"{where}: {errors}" if where else str(errors)
