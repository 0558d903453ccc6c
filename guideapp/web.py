"""The request lifecycle: request id, session, actor, idempotency, and the one commit."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from typing import Iterator

from flask import Flask, Response, current_app, g, request
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge, RequestURITooLarge

from guideapp import untrusted
from guideapp.db import commit
from guideapp.errors import (
    InvalidInput,
    database_unavailable,
    integrity_conflict,
    unavailable_answer,
)
from guideapp.http import READ_ONLY, db_session, extension

log = logging.getLogger("guideapp.request")
READS = ("GET", "HEAD")
WRITE_IN_A_READ = "A read (GET) request tried to write; mark its view Blueprint.writes_on_get."


@event.listens_for(Session, "before_flush")
def _refuse_flush_in_a_read(session: Session, _context, _instances) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise RuntimeError(WRITE_IN_A_READ)


def _refuse_unsaved_writes(session: Session) -> None:
    """A read that added or noted something it never flushed would lose it silently."""
    from guideapp.changelog.log import NOTES

    if session.new or session.dirty or session.deleted or session.info.get(NOTES):
        raise RuntimeError(WRITE_IN_A_READ)


@event.listens_for(Session, "do_orm_execute")
def _refuse_writes_in_a_read(state) -> None:
    if state.session.info.get(READ_ONLY) and (
        state.is_insert or state.is_update or state.is_delete
    ):
        raise RuntimeError(WRITE_IN_A_READ)


def _view_handler():
    """The function that will answer this request (None: no route), where Blueprint
    decorators leave their marks (public, versioned_read)."""
    view = current_app.view_functions.get(request.endpoint or "")
    view_class = getattr(view, "view_class", None)
    return getattr(view_class, request.method.lower(), None) if view_class else view


def _takes_files(handler) -> bool:
    """A view with form or file arguments (uploads, imports): it gets the larger body limit.
    (flask-smorest's `arguments` decorator notes each argument's location in `_apidoc`.)"""
    parameters = getattr(handler, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    return any(p.get("in") in ("files", "form") for p in parameters)


def _refuse_streamed_body_over_limit() -> None:
    """A chunked body (no Content-Length) is cut at the limit by werkzeug, silently: read it
    here (it is small) and refuse it with the 413 a Content-Length over the limit gets."""
    if request.content_length is None and "wsgi.input_terminated" in request.environ:
        limit = request.max_content_length
        if limit is not None and len(request.get_data(cache=True)) >= limit:
            raise RequestEntityTooLarge()


FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


def _parts_fingerprint() -> Iterator[bytes]:
    """What an Idempotency-Key compares for a view that takes files: the parsed parts, not
    the raw body, which request.get_data() would hold whole in memory (and Werkzeug would
    keep it for the form parser). Werkzeug spools each uploaded file to a temporary file
    as it parses; each is hashed from there in chunks and rewound for the view. The form
    fields and each file's field, name and type count too (the query is in the path), the
    multipart boundary does not: a client's retry with a new boundary is still a replay."""
    if request.mimetype not in FORMS:  # no parts to read (the view will refuse it)
        yield from iter(lambda: request.stream.read(1 << 16), b"")
        return
    for name, value in sorted(request.form.items(multi=True)):
        yield json.dumps(["form", name, value]).encode() + b"\n"
    for name, upload in request.files.items(multi=True):
        about = ["file", name, upload.filename, upload.mimetype, _digest(upload.stream)]
        yield json.dumps(about).encode() + b"\n"


def _digest(stream) -> str:
    """SHA-256 of a file read in chunks from its start, rewound afterwards for the view."""
    digest = hashlib.sha256()
    stream.seek(0)
    while chunk := stream.read(1 << 16):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _request_id(sent: str | None) -> str:
    """The caller's X-Request-ID when it is a plain token (it is echoed in a header and
    logged), else a new one."""
    return sent if sent and _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


def refuse_hostile_url_and_headers(config) -> None:
    """The URL (path and query) and the headers of every request, checked once before any
    code reads them: too long is a JSON 414, text no column may hold (NUL, lone surrogates)
    a 422 naming the parameter. Bodies are checked by the arguments parser."""
    raw_url = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if len(raw_url or request.full_path) > config["MAX_URL_LENGTH"]:
        raise RequestURITooLarge(
            f"The URL may be at most {config['MAX_URL_LENGTH']} characters; "
            "send long input in a request body."
        )
    errors: dict[str, list[str]] = {}
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and (problem := untrusted.text_problem(value)):
            errors[name] = [problem]
    if not errors and (problem := untrusted.text_problem(request.path)):
        errors["path"] = [problem]
    for key, value in request.args.items(multi=True):
        if problem := untrusted.text_problem(key) or untrusted.text_problem(value):
            errors[untrusted.printable(key)] = [problem]
    for name, value in request.headers.items():
        if problem := untrusted.text_problem(value):
            errors[name] = [problem]
    if errors:
        raise InvalidInput("The URL or a header carries text no field may hold.", errors=errors)


def _login_source():
    """Where the login check runs: a versioned read checks outside any transaction, on a
    pooled connection; other requests (and tests, which bind one connection) in theirs."""
    engine = extension("engine")
    return engine if g.outside_transaction and engine is not None else db_session()


def _reads_change_version(handler) -> bool:
    """A versioned read needs the caller's change version; a replica_read only when there
    are standbys to choose from (without them the primary answers and nothing is compared)."""
    if getattr(handler, "replica_read", False):
        return bool(extension("replicas"))
    return bool(g.versioned_read)


def init_request_lifecycle(app: Flask) -> None:
    from guideapp.auth.member_login import HEADER as MEMBER_HEADER
    from guideapp.auth.member_login import authenticate_member
    from guideapp.auth.service import authenticate_request
    from guideapp.idempotency import service as idempotency

    @app.before_request
    def _start():
        g.started = time.perf_counter()
        g.request_id = _request_id(request.headers.get("X-Request-ID"))
        refuse_hostile_url_and_headers(app.config)
        handler = _view_handler()
        takes_files = _takes_files(handler)
        if takes_files:  # before anything reads the body
            request.max_content_length = app.config["MAX_UPLOAD_BYTES"]
        else:
            _refuse_streamed_body_over_limit()
        if not request.path.startswith("/api/"):
            return None
        counter = getattr(handler, "counted_first", None)
        if counter is not None:
            counter()
        g.versioned_read = getattr(handler, "versioned_read", False)
        # A read runs outside any transaction: no BEGIN / COMMIT round trips, and nothing
        # lost, since under READ COMMITTED each statement takes its own snapshot inside a
        # transaction too. A GET that writes is marked (Blueprint.writes_on_get); one that
        # writes only for some callers is decided once the caller is known (below).
        writes = getattr(handler, "writes_on_get", False)
        g.outside_transaction = g.versioned_read or (
            request.method in READS and (not writes or callable(writes))
        )
        # An unknown route counts as public: Flask answers it 404/405.
        needs_login = handler is not None and not getattr(handler, "public", False)
        g.actor = (
            authenticate_request(
                _login_source(),
                request.headers.get("Authorization"),
                config=app.config,
                with_change_version=_reads_change_version(handler),
                with_sync_counter=getattr(handler, "answers_empty_pull", False),
            )
            if request.headers.get("Authorization") or needs_login
            else None
        )
        if callable(writes) and not g.versioned_read and g.actor is not None and writes(g.actor):
            g.outside_transaction = False  # this caller's read writes: a transaction
            read = g.pop("db_session", None)  # the login's read-only one (tests bind a connection)
            if read is not None:
                read.close()
        if getattr(handler, "for_members", False):  # a member page: the member's token
            g.member = authenticate_member(request.headers.get(MEMBER_HEADER), config=app.config)
        if request.method == "POST" and request.headers.get("Idempotency-Key"):
            replay = idempotency.begin(
                db_session(),
                key=request.headers["Idempotency-Key"],
                owner=g.actor.staff_id if g.actor else f"anon:{request.remote_addr}",
                method=request.method,
                path=request.full_path,
                body=_parts_fingerprint() if takes_files else request.get_data(),
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
        if session is not None and g.get("outside_transaction"):
            _refuse_unsaved_writes(session)
        if session is not None and not g.get("outside_transaction"):  # a read: no commit
            succeeded = response.status_code < 400
            if (succeeded or g.get("keep_writes")) and not g.get("idempotency_replayed"):
                try:
                    # (a file sent in chunks is a download, never a POST to replay)
                    if succeeded and not response.is_streamed:
                        idempotency.finish(session, response.status_code, response.get_data())
                    commit(session)
                except IntegrityError as error:
                    session.rollback()
                    response = app.make_response(integrity_conflict(error))
                except DBAPIError as error:
                    if not database_unavailable(error):
                        raise
                    # Lost at COMMIT (a restart): whether it committed, the client cannot
                    # tell; a retry with the same Idempotency-Key is right either way.
                    session.rollback()
                    response = app.make_response(unavailable_answer(error))
            else:
                session.rollback()
        response.headers["X-Request-ID"] = g.get("request_id", "")
        _log_request(response)
        return response

    @app.teardown_request
    def _close(_exc):
        for name in ("db_session", "read_session"):
            session = g.pop(name, None)
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
            # a replica_read: which standby answered, or the primary
            **({"served_by": g.served_by} if "served_by" in g else {}),
        },
    )
