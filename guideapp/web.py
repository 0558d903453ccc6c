"""The request lifecycle: request id, session, actor, idempotency, and the one commit."""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, current_app, g, request
from sqlalchemy.exc import IntegrityError
from werkzeug.http import is_resource_modified

from guideapp.db import commit
from guideapp.errors import error_payload

log = logging.getLogger("guideapp.request")


def db_session():
    """The request's session, opened on first use (autocommit for versioned reads)."""
    if "db_session" not in g:
        maker = "autocommit_sessionmaker" if g.get("versioned_read") else "sessionmaker"
        g.db_session = current_app.extensions["guideapp"][maker]()
    return g.db_session


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
    from guideapp.errors import Unauthorized

    actor = g.get("actor")
    if actor is None:
        raise Unauthorized()
    return actor


def _view_handler():
    """The function that will answer this request (None: no route), where Blueprint
    decorators leave their marks (public, versioned_read)."""
    view = current_app.view_functions.get(request.endpoint or "")
    view_class = getattr(view, "view_class", None)
    return getattr(view_class, request.method.lower(), None) if view_class else view


def _login_source():
    """Where the login check runs: a versioned read checks outside any transaction, on a
    pooled connection; other requests (and tests, which bind one connection) in theirs."""
    engine = extension("engine")
    return engine if g.versioned_read and engine is not None else db_session()


def init_request_lifecycle(app: Flask) -> None:
    from guideapp.auth.service import authenticate_request
    from guideapp.idempotency import service as idempotency

    @app.before_request
    def _start():
        g.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
        g.started = time.perf_counter()
        if not request.path.startswith("/api/"):
            return None
        handler = _view_handler()
        g.versioned_read = getattr(handler, "versioned_read", False)
        # An unknown route counts as public: Flask answers it 404/405.
        needs_login = handler is not None and not getattr(handler, "public", False)
        g.actor = (
            authenticate_request(
                _login_source(),
                request.headers.get("Authorization"),
                config=app.config,
                with_change_version=g.versioned_read,
            )
            if request.headers.get("Authorization") or needs_login
            else None
        )
        if request.method == "POST" and request.headers.get("Idempotency-Key"):
            replay = idempotency.begin(
                db_session(),
                key=request.headers["Idempotency-Key"],
                owner=g.actor.staff_id if g.actor else f"anon:{request.remote_addr}",
                method=request.method,
                path=request.full_path,
                body=request.get_data(),
            )
            if replay is not None:
                g.idempotency_replayed = True
                return Response(
                    replay.body,
                    status=replay.status_code,
                    mimetype="application/json",
                    headers={"Idempotent-Replayed": "true", **_replayed_location(replay)},
                )
        return None

    @app.after_request
    def _finish(response: Response):
        session = g.get("db_session")
        if session is not None and not g.get("versioned_read"):  # a read: nothing to commit
            succeeded = response.status_code < 400
            if (succeeded or g.get("keep_writes")) and not g.get("idempotency_replayed"):
                try:
                    if succeeded:
                        idempotency.finish(session, response.status_code, response.get_data())
                    commit(session)
                except IntegrityError:
                    session.rollback()
                    log.info("commit refused by a constraint", exc_info=True)
                    response = app.response_class(
                        _json(error_payload(409, "This conflicts with an existing record.")),
                        status=409,
                        mimetype="application/json",
                    )
            else:
                session.rollback()
        response.headers["X-Request-ID"] = g.get("request_id", "")
        _log_request(response)
        return response

    @app.teardown_request
    def _close(_exc):
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def _replayed_location(replay) -> dict:
    """A replayed 202 points at its job again (the stored body has the job's url)."""
    if replay.status_code != 202:
        return {}
    import json

    try:
        url = json.loads(replay.body).get("url")
    except (ValueError, AttributeError):
        return {}
    return {"Location": url} if isinstance(url, str) else {}


def _json(payload) -> str:
    import json

    return json.dumps(payload, ensure_ascii=False)


def _log_request(response: Response) -> None:
    started = g.get("started")
    actor = g.get("actor")
    log.info(
        "request",
        extra={
            "request_id": g.get("request_id"),
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
            "staff_id": actor.staff_id if actor else None,
            "tenant_id": actor.tenant_id if actor else None,
        },
    )
