"""What a route may use of the request it answers: its session, its actor, per-app objects,
pre-rendered and conditional JSON. Set up by web.py's request lifecycle; knows no domain."""

from __future__ import annotations

from typing import cast

import orjson
from flask import Response, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SessionInterface
from werkzeug.http import is_resource_modified

from guideapp.errors import Unauthorized


READ_ONLY = "read_only"  # Session.info mark of a request that must write nothing (web.py)

# Flask's output (sorted keys, compact, UTF-8 as is), encoded by orjson; times, dates and
# dataclasses still go through Flask's own conversions (`DefaultJSONProvider.default`).
_ORJSON = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class NoCookieSessions(SessionInterface):
    """Nobody is signed in by a cookie here (bearer tokens, the member token): Flask's
    cookie session would only be unsigned and re-signed on every request for nothing."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        return None


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, written by orjson: every answer is JSON, and the standard library's
    encoder was a tenth of a list page's time. What orjson refuses (an int key, an int over
    64 bits) is written by the standard library, as before. Reading stays Flask's own."""

    ensure_ascii = False
    compact = True

    def dumps(self, obj, **kwargs) -> str:
        return self.to_bytes(obj, **kwargs).decode()

    def response(self, *args, **kwargs) -> Response:
        body = self.to_bytes(self._prepare_response_obj(args, kwargs)) + b"\n"
        response_class = cast(type[Response], self._app.response_class)
        return response_class(body, mimetype=self.mimetype)

    def to_bytes(self, obj, **kwargs) -> bytes:
        """`obj` as JSON bytes; a caller asking for other options (indent) gets the stdlib."""
        if not kwargs:
            try:
                return orjson.dumps(obj, default=self.default, option=_ORJSON)
            except orjson.JSONEncodeError:
                kwargs = {"separators": (",", ":")}
        return super().dumps(obj, **kwargs).encode()


def db_session():
    """The request's session, opened on first use: outside any transaction for a read (a
    GET, a versioned read), which writes nothing (web.py refuses it loudly)."""
    if "db_session" not in g:
        reads = bool(g.get("outside_transaction"))
        maker = "autocommit_sessionmaker" if reads else "sessionmaker"
        g.db_session = current_app.extensions["guideapp"][maker]()
        if reads:
            g.db_session.info[READ_ONLY] = True
    return g.db_session


def read_session(*, at_least: int):
    """The session a replica_read view reads with: a standby that has replayed the caller's
    tenant up to `at_least` (guideapp/changelog/replicas.py), else the request's own."""
    replicas = current_app.extensions["guideapp"].get("replicas")
    actor = current_actor()
    if replicas:
        found = replicas.session_at(actor.tenant_id, at_least=at_least)
        if found is not None:
            g.read_session, g.served_by = found
            return g.read_session
    g.served_by = "primary"
    return db_session()


def scoped_read_session():
    """For a replica_read list of what the caller's phone follows (materials, quick replies):
    a standby that has replayed the newest change in the caller's scopes. HQ sees every
    store's rows, which no scope version covers: HQ reads the primary."""
    actor = current_actor()
    if actor.is_hq or actor.change_version is None:
        g.served_by = "primary"
        return db_session()
    return read_session(at_least=actor.change_version)


def extension(name: str):
    """A per-app object set up in create_app (storage, inbox cache...)."""
    return current_app.extensions["guideapp"][name]


def json_bytes(payload) -> bytes:
    """The bytes Flask's own JSON response would carry, for answers kept pre-rendered."""
    return current_app.json.to_bytes(payload)  # type: ignore[attr-defined]


def conditional_json(body: bytes, etag: str) -> Response:
    """A JSON answer with its ETag; a 304 without body when the client already holds it.

    werkzeug's is_resource_modified (If-None-Match, weak comparison) decides; the fuller
    Response.make_conditional also serves byte ranges, which JSON pages never need.
    """
    if not is_resource_modified(request.environ, etag=etag):
        response = current_app.response_class(status=304)
    else:
        response = current_app.response_class(body, mimetype="application/json")
    response.set_etag(etag)
    return response


def current_actor():
    """Who is calling (web.py put them there); 401 when nobody logged in."""
    actor = g.get("actor")
    if actor is None:
        raise Unauthorized()
    return actor


def current_member():
    """The member a member-facing view answers (web.py checked their token)."""
    member = g.get("member")
    if member is None:
        raise Unauthorized("Sign in first: send 'X-Member-Token: <member token>'.")
    return member
