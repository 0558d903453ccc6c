"""What a route may use of the request it answers: its session, its actor, per-app objects,
pre-rendered and conditional JSON. Set up by web.py's request lifecycle; knows no domain."""

from __future__ import annotations

from flask import Response, current_app, g, request
from werkzeug.http import is_resource_modified

from guideapp.errors import Unauthorized


READ_ONLY = "read_only"  # Session.info mark of a request that must write nothing (web.py)


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
    return current_app.json.dumps(payload).encode()


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
