"""Domain errors, and their one mapping to the API's JSON error shape."""

from __future__ import annotations

import logging

from flask import Flask, g, request
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A rule said no. `errors` names fields where a field is to blame.

    `keep_writes` errors still commit what was written before them (e.g. a failed
    login is counted for throttling); every other error rolls the request back.
    """

    status = 400
    default_message = "The request breaks a business rule."
    keep_writes = False

    def __init__(self, message: str | None = None, *, errors: dict | None = None, headers=None):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.errors = errors
        self.headers = headers or {}


class InvalidInput(DomainError):
    status = 422
    default_message = "Some fields are not valid."


class Unauthorized(DomainError):
    status = 401
    default_message = "Log in first: send 'Authorization: Bearer <access token>'."


class LoginFailed(Unauthorized):
    keep_writes = True


class Forbidden(DomainError):
    status = 403
    default_message = "Your role may not do this."


class NotFound(DomainError):
    status = 404
    default_message = "Not found."


class Conflict(DomainError):
    status = 409
    default_message = "This conflicts with the current state of the data."


class InvalidState(DomainError):
    status = 409
    default_message = "This cannot be done in the record's current state."


class TooLarge(DomainError):
    status = 413
    default_message = "Too large; send less at once."


class StorageFull(DomainError):
    """The file store has no room (disk or quota full): nothing of the file was kept. A 503,
    as every operation documents for a server that cannot serve now; the message says why."""

    status = 503
    default_message = (
        "The server has no room to store this file right now; nothing was kept. Try again later."
    )


class TooManyRequests(DomainError):
    status = 429
    default_message = "Too many attempts; wait and try again."


def error_payload(status: int, message: str, errors: dict | None = None) -> dict:
    """The one error shape: `errors` always present, field errors keyed by field name."""
    from http import HTTPStatus

    return {
        "code": status,
        "status": HTTPStatus(status).phrase,
        "message": message,
        "errors": dict(errors or {}),
    }


# webargs files its messages under the location they came from (json, query, files, form...);
# clients get them keyed by field name, whatever the location.
_LOCATIONS = {"json", "query", "querystring", "form", "files", "headers", "cookies", "json_or_form"}


def field_errors(messages) -> dict:
    """webargs' {location: {field: [...]}} flattened to {field: [...]}; a message about a
    whole location (a body that is not an object, invalid JSON) goes under `_schema`, as
    marshmallow files schema-level errors."""
    if not isinstance(messages, dict):
        return {"_schema": list(messages) if isinstance(messages, list) else [str(messages)]}
    flat: dict = {}
    for key, value in messages.items():
        if key not in _LOCATIONS:
            _merge(flat, key, value)
        elif isinstance(value, dict):
            for field, problems in value.items():
                _merge(flat, field, problems)
        else:
            _merge(flat, "_schema", value)
    return flat


def _merge(flat: dict, field, problems) -> None:
    if field not in flat:
        flat[field] = problems
    elif isinstance(flat[field], list) and isinstance(problems, list):
        flat[field] = flat[field] + problems
    elif isinstance(flat[field], dict) and isinstance(problems, dict):
        flat[field] = {**flat[field], **problems}
    else:
        flat[field] = [flat[field], problems]


def integrity_conflict(error: IntegrityError) -> tuple[dict, int]:
    """The one mapping of a refused database constraint: a 409. Used as the handler of an
    IntegrityError raised in a view, and by web.py when the request's commit is refused."""
    log.info("integrity error mapped to 409: %s", error.orig)
    return error_payload(409, "This conflicts with an existing record."), 409


def database_unavailable(error: DBAPIError) -> bool:
    """The database went away or is busy (a restart, a failover, a dropped connection), not
    a bug: the client may retry. SQLAlchemy marks a lost connection `connection_invalidated`
    whatever DBAPI error class the driver raised for it."""
    return isinstance(error, OperationalError) or bool(error.connection_invalidated)


def unavailable_answer(error: DBAPIError) -> tuple[dict, int]:
    """The one 503 of a database that is not there: raised in a view, or at the request's
    commit in web.py (a restart between the last statement and COMMIT)."""
    log.warning("database unavailable: %s", error.orig or error)
    return error_payload(503, "The database is busy or unreachable; retry shortly."), 503


def register_error_handlers(app: Flask) -> None:
    """Every error, HTTP (404 route, 405, webargs 422) or domain, answers `error_payload`."""

    @app.errorhandler(DomainError)
    def _domain(error: DomainError):
        if error.keep_writes:
            g.keep_writes = True
        return error_payload(error.status, error.message, error.errors), error.status, error.headers

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        data = getattr(error, "data", None) or {}
        errors = field_errors(data.get("errors") or data.get("messages") or {})
        message = data.get("message") or _default_message(error, errors)
        payload = error_payload(error.code or 500, message, errors)
        return payload, error.code, data.get("headers", {})

    app.errorhandler(IntegrityError)(integrity_conflict)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(error: RequestEntityTooLarge):
        limit, length = request.max_content_length, request.content_length
        # No length: chunked, and streamed past the limit (web.py).
        if limit and (length is None or length > limit):
            message = f"The request body may be at most {limit} bytes."
        else:  # too many or too large form parts
            message = error.description or "The request body is too large."
        return error_payload(413, message), 413

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error")
        return error_payload(500, "Something went wrong on our side; it has been logged."), 500

    @app.errorhandler(DBAPIError)
    def _database(error: DBAPIError):
        if database_unavailable(error):
            return unavailable_answer(error)
        return _unexpected(error)


def _default_message(error: HTTPException, errors) -> str:
    if error.code == 422 and errors:
        return "Some fields are not valid; see 'errors' for each field."
    if error.code == 404:
        return "No such endpoint or record."
    if error.code == 400 and errors:
        return "The request body could not be read; see 'errors'."
    return error.description or error.name
