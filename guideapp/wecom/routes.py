"""HQ's WeCom configuration and event inbox, and the public callback URL WeCom calls."""

from flask import Response, current_app, request
from flask.views import MethodView

from guideapp.db import commit, utcnow
from guideapp.errors import TooLarge
from guideapp.extensions import Blueprint
from guideapp.http import current_actor, db_session, extension
from guideapp.jobs.http import LOCATION_HEADER, accepted, idempotency_key
from guideapp.jobs.schemas import JobSchema
from guideapp.scans import counters
from guideapp.wecom import (
    alerts,
    callback,
    customer_sync,
    events,
    handlers,
    service,
    transfers,
    welcomes,
)
from guideapp.wecom import schemas as s

assert handlers  # imported for its registrations: the web app and the worker both have them

blp = Blueprint(
    "wecom", __name__, url_prefix="/api/v1/wecom", description="WeCom (企业微信): corp, callbacks"
)


def _present_config() -> dict:
    answer = service.get_config(db_session(), actor=current_actor())
    return _with_urls(answer)


def _with_urls(answer: dict) -> dict:
    base = current_app.config["WECOM_CALLBACK_BASE_URL"].rstrip("/")
    answer["callback_url"] = f"{base}{service.callback_path(_slug())}"
    answer["secrets_key_set"] = extension("secretbox").available
    return answer


def _slug() -> str:
    from guideapp.org.models import Tenant

    return db_session().get_one(Tenant, current_actor().tenant_id).slug


@blp.route("/config")
class WecomConfig(MethodView):
    @blp.response(200, s.WecomConfigSchema)
    def get(self):
        """The brand's WeCom corp (HQ); secrets are never returned, only `*_set`"""
        return _present_config()

    @blp.arguments(s.WecomConfigUpdateSchema)
    @blp.response(200, s.WecomConfigSchema)
    @blp.alt_response(503, description="No GUIDEAPP_WECHAT_SECRETS_KEY: secrets cannot be stored")
    def put(self, data):
        """Set the fields sent (null clears one); secrets left out are kept"""
        return _with_urls(service.put_config(db_session(), actor=current_actor(), data=data))


def _rate_limit() -> None:
    """Callbacks per tenant URL, counted in a transaction of their own (counters.hit)."""
    config = current_app.config
    session = current_app.extensions["guideapp"]["sessionmaker"]()
    slug = (request.view_args or {}).get("slug", "")
    try:
        counters.hit(
            session,
            window_s=60,
            now=utcnow(),
            limits=[(f"wecom:{slug}"[:100], config["WECOM_CALLBACK_RATE_PER_MINUTE"])],
        )
        commit(session)
    finally:
        session.rollback()
        session.close()


def _plain(text: str) -> Response:
    return Response(text, mimetype="text/plain")


@blp.route("/callback/<slug>")
class Callback(MethodView):
    @blp.public
    @blp.counted_first(_rate_limit)
    @blp.arguments(s.VerifyArgsSchema, location="query")
    @blp.doc(responses={"200": {"description": "The decrypted echostr, as plain text."}})
    def get(self, args, slug):
        """URL verification: WeCom checks the URL HQ entered (public; signed by WeCom)"""
        return _plain(callback.verify_url(db_session(), slug=slug, args=args))

    @blp.public
    @blp.counted_first(_rate_limit)
    @blp.arguments(s.CallbackArgsSchema, location="query")
    @blp.doc(
        requestBody={
            "required": True,
            "content": {"text/xml": {"schema": {"type": "string"}}},
        },
        responses={
            "200": {"description": "`success`: stored (also for a retry already stored)."},
            "400": {"description": "Not XML, or it does not decrypt with the corp's key."},
            "401": {"description": "Bad or missing signature, or a timestamp outside the window."},
            "403": {"description": "A message for another corp."},
            "404": {"description": "No WeCom callback configured at this URL."},
            "413": {"description": "Body too large."},
        },
    )
    def post(self, args, slug):
        """A WeCom event (public; signed and encrypted by WeCom): stored, answered at once,
        processed by the event worker"""
        limit = current_app.config["WECOM_MAX_CALLBACK_BYTES"]
        if (request.content_length or 0) > limit or len(request.get_data(cache=True)) > limit:
            raise TooLarge(f"A callback is at most {limit} bytes.")
        callback.receive(db_session(), slug=slug, args=args, body=request.get_data(cache=True))
        return _plain("success")


@blp.route("/events")
class Events(MethodView):
    @blp.arguments(s.EventArgsSchema, location="query")
    @blp.response(200, s.WecomEventPageSchema)
    def get(self, args):
        """WeCom's callbacks as stored, newest first (HQ); `state=dead` for the dead letters"""
        return events.list_events(db_session(), actor=current_actor(), **args)


@blp.route("/events/<event_id>")
class EventById(MethodView):
    @blp.response(200, s.WecomEventSchema)
    def get(self, event_id):
        """One stored event (HQ)"""
        return events.get_event(db_session(), actor=current_actor(), event_id=event_id)


@blp.route("/events/<event_id>/replay")
class Replay(MethodView):
    @blp.response(200, s.WecomEventSchema)
    def post(self, event_id):
        """Process a dead event again now, with its attempts reset (HQ)"""
        return events.replay(db_session(), actor=current_actor(), event_id=event_id)


@blp.route("/transfers")
class Transfers(MethodView):
    @blp.arguments(s.TransferArgsSchema, location="query")
    @blp.response(200, s.WecomTransferPageSchema)
    def get(self, args):
        """Customers handed over in WeCom with their members, newest first (HQ: all; a
        manager: out of or into their store)"""
        return transfers.list_transfers(db_session(), actor=current_actor(), **args)


@blp.route("/welcomes/<code_id>")
class Welcome(MethodView):
    @blp.response(200, s.WelcomeSchema)
    def get(self, code_id):
        """The welcome message a code's new WeCom customers get (HQ)"""
        return welcomes.get_welcome(db_session(), actor=current_actor(), code_id=code_id)

    @blp.arguments(s.WelcomeSchema)
    @blp.response(200, s.WelcomeSchema)
    def put(self, data, code_id):
        """Set it (HQ): text and/or a material sent as a link card; both empty removes it"""
        return welcomes.put_welcome(db_session(), actor=current_actor(), code_id=code_id, data=data)


@blp.route("/alerts")
class Alerts(MethodView):
    @blp.arguments(s.AlertArgsSchema, location="query")
    @blp.response(200, s.WecomAlertPageSchema)
    def get(self, args):
        """Risk alerts, newest first: a guide deleted a customer (HQ all, a manager their
        store's; guides 403)"""
        return alerts.list_alerts(db_session(), actor=current_actor(), **args)


@blp.route("/customer-syncs")
class CustomerSyncs(MethodView):
    @blp.arguments(s.CustomerSyncSchema)
    @blp.response(202, JobSchema, headers=LOCATION_HEADER)
    def post(self, data):
        """Import the guides' existing WeCom customers as a job (HQ; progress in customers)"""
        job, _ = customer_sync.start_sync(
            db_session(),
            actor=current_actor(),
            userid=data["userid"],
            idempotency_key=idempotency_key(),
        )
        return accepted(job)


# The contact ways' views live in their own module, on this blueprint.
from guideapp.wecom import contact_ways_routes  # noqa: E402, F401
