"""The API object, the Blueprint and the Schema every package builds on."""

import json
import threading
from datetime import timezone
from http import HTTPStatus

import marshmallow as ma
from apispec import BasePlugin
from cachetools import LRUCache
from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint
from flask_smorest.exceptions import PreconditionRequired
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request

from guideapp import dumping, untrusted
from guideapp.errors import register_error_handlers


class ErrorSchema(ma.Schema):
    """Every error answer (errors.error_payload): `errors` is always there, field errors
    keyed by field name (`_schema` for the request as a whole)."""

    code = ma.fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    status = ma.fields.String(required=True, metadata={"description": "The HTTP status phrase."})
    message = ma.fields.String(required=True, metadata={"description": "What went wrong."})
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        required=True,
        metadata={"description": "Problems per field name; may be empty."},
    )


WRITE_METHODS = {"post", "put", "patch", "delete"}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


class ErrorResponses(BasePlugin):
    """Documents, in one place, the errors every operation can answer (errors.py):

    - 400 a body that is not JSON / not readable; 413 a body or upload too large
      (operations with a body);
    - 401 a missing, expired or forged token (sent to a public operation too, it is checked);
    - 403 the caller's role may not (operations that need a login);
    - 404 a record not found or not visible to the caller (operations with ids in the path,
      the query or the body);
    - 409 a conflict with stored data (writes);
    - 422 invalid fields or unknown query parameters (every operation);
    - 503 the database is busy or unreachable (every operation).

    A view documents any other answer (429, 410, 412...) with `@blp.alt_response`; a
    description is enough, the error shape is added here.
    """

    def operation_helper(self, path=None, operations=None, **kwargs):
        for method, operation in (operations or {}).items():
            responses = operation.setdefault("responses", {})
            codes = [401, 422, 503]
            security = operation.get("security")
            if security is None or any("bearerAuth" in s for s in security):
                codes.append(403)  # a staff login's role may not (members have no roles)
            if "{" in (path or "") or self._names_ids(operation):
                codes.append(404)
            if method in WRITE_METHODS:
                codes.append(409)
            if "requestBody" in operation:
                codes += [400, 413]
            for code in codes:
                if code not in responses and str(code) not in responses:
                    responses[code] = HTTPStatus(code).name
            for code, response in responses.items():
                # An `alt_response` with only a description answers the error shape too.
                error = str(code).isdigit() and int(code) >= 400
                if error and isinstance(response, dict) and "content" not in response:
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
            operation["responses"] = dict(sorted(responses.items(), key=lambda r: str(r[0])))

    def init_spec(self, spec):
        super().init_spec(spec)
        self.spec = spec

    def _names_ids(self, operation) -> bool:
        """Whether the request carries record ids (`…_id`, `…_ids`) in its query or body."""
        names = [p.get("name", "") for p in operation.get("parameters", []) if isinstance(p, dict)]
        for content in operation.get("requestBody", {}).get("content", {}).values():
            names += self._property_names(content.get("schema"), depth=0)
        return any(n.endswith(("_id", "_ids")) for n in names)

    def _property_names(self, schema, *, depth) -> list[str]:
        if depth > 4 or schema is None:
            return []
        if isinstance(schema, dict) and "$ref" in schema:
            schema = schema["$ref"].rsplit("/", 1)[-1]
        if isinstance(schema, str):
            schema = self.spec.components.schemas.get(schema)
        if not isinstance(schema, dict):
            return []
        names = []
        for name, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, dict) and prop.get("readOnly"):
                continue
            names.append(name)
            names += self._property_names(prop, depth=depth + 1)
            if isinstance(prop, dict):
                names += self._property_names(prop.get("items"), depth=depth + 1)
        return names


class Api(_Api):
    # No catch-all `default` answer: each operation lists the errors it can give (ErrorResponses).
    DEFAULT_ERROR_RESPONSE_NAME = None
    ERROR_SCHEMA = ErrorSchema

    def __init__(self, app=None, *, spec_kwargs=None, **kwargs):
        spec_kwargs = dict(spec_kwargs or {})
        spec_kwargs.setdefault("extra_plugins", [ErrorResponses()])
        super().__init__(app, spec_kwargs=spec_kwargs, **kwargs)

    def _register_error_handlers(self):
        # errors.py owns the mapping for HTTP and domain errors alike.
        register_error_handlers(self._app)


class UntrustedInputParser(FlaskParser):
    """Bodies pass guideapp.untrusted before any schema: JSON too deep is a 400 like invalid
    JSON; a NUL or lone surrogate in any string, key or upload name is a 422 naming where.
    (The URL and headers are checked once per request in web.py.)"""

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        try:
            return untrusted.loads(data, max_depth=current_app.config["MAX_JSON_DEPTH"])
        except untrusted.UnsafeText as exc:
            raise ma.ValidationError(exc.errors()) from exc

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        reason = error.msg if isinstance(error, untrusted.TooDeep) else "Invalid JSON body."
        abort(400, exc=error, messages={"json": [reason]})

    def pre_load(self, location_data, *, schema, req, location):
        if location in ("form", "files"):
            for key, value in (req.files if location == "files" else req.form).items(multi=True):
                text = getattr(value, "filename", value)  # an upload: its file name
                problem = untrusted.text_problem(key) or (
                    untrusted.text_problem(text) if isinstance(text, str) else None
                )
                if problem:
                    raise ma.ValidationError({untrusted.printable(key): [problem]})
        return location_data


class ArgumentsParser(UntrustedInputParser):
    """webargs' Flask parser; a query-string schema that sets `keep_parsed = True` has its
    parses kept per query string (the inbox: phones send the same few query strings all
    day). Only for schemas whose result depends on the query string alone (no time- or
    request-dependent defaults); only results of immutable values are kept."""

    KEPT = 1024
    # Unknown query parameters and file fields are refused, as unknown body fields are
    # (extensions.Schema): a typo never passes silently.
    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
        "files": ma.RAISE,
    }

    def __init__(self):
        super().__init__()
        self._kept: LRUCache = LRUCache(maxsize=self.KEPT)
        self._lock = threading.Lock()

    def parse(self, argmap, req=None, *, location=None, **kwargs):
        if location != "query" or not getattr(argmap, "keep_parsed", False):
            return super().parse(argmap, req, location=location, **kwargs)
        key = (id(argmap), request.query_string)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None:
            return dict(kept)
        parsed = super().parse(argmap, req, location=location, **kwargs)
        if all(isinstance(v, (str, int, float, bool, type(None))) for v in parsed.values()):
            with self._lock:
                self._kept[key] = dict(parsed)
        return parsed


class NoQueryArgsSchema(ma.Schema):
    """The query string of a view that reads none: any parameter is unknown (422)."""


def _reads_query(view) -> bool:
    arguments = getattr(view, "_apidoc", {}).get("arguments", {})
    return any(p.get("in") == "query" for p in arguments.get("parameters", []))


class Blueprint(_Blueprint):
    """flask-smorest Blueprint; `public` marks a view that needs no login.

    Every view refuses unknown query parameters: a view without query arguments gets an
    empty query schema, so `?anything=` is a 422 naming it, from the same parser.

    ETags are checked after the record is found, so a foreign id is 404 whatever the
    headers: flask-smorest asks for If-Match (428) before the view runs; here check_etag
    asks for it once the record is known to be visible (404, then 428 / 412).
    """

    ARGUMENTS_PARSER = ArgumentsParser()

    def arguments(self, schema, *args, **kwargs):
        """As flask-smorest's, with a schema class instantiated once, not per request."""
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)

    def add_url_rule(self, rule, endpoint=None, view_func=None, *args, **kwargs):
        if isinstance(view_func, type) and issubclass(view_func, MethodView):
            for method in view_func.methods or ():
                handler = getattr(view_func, method.lower())
                if not _reads_query(handler):
                    setattr(view_func, method.lower(), self._no_query(handler))
        elif view_func is not None and not _reads_query(view_func):
            view_func = self._no_query(view_func)
        return super().add_url_rule(rule, endpoint, view_func, *args, **kwargs)

    def _no_query(self, view):
        return self.arguments(NoQueryArgsSchema, location="query", as_kwargs=True)(view)

    def _check_precondition(self):
        return None

    def check_etag(self, etag_data, etag_schema=None):
        if not request.if_match:
            raise PreconditionRequired
        return super().check_etag(etag_data, etag_schema)

    @staticmethod
    def public(view):
        view = _Blueprint.doc(security=[])(view)
        view.public = True
        return view

    @staticmethod
    def for_members(view):
        """A member-facing view: no staff login; the member token (X-Member-Token, from
        POST /wechat/me/session) says who calls, checked by web.py before the view."""
        view = _Blueprint.doc(security=[{"memberToken": []}])(view)
        view.public = view.for_members = True
        return view

    @staticmethod
    def counted_first(counter):
        """`counter()` runs before anything else reads the request (the login, the
        Idempotency-Key): a rate limit counted in a transaction of its own, committed at
        once, that refuses (429) before any other work. First, because on SQLite the
        request's own transaction holds the only write lock from its first statement on."""

        def decorator(view):
            view.counted_first = counter
            return view

        return decorator

    @staticmethod
    def versioned_read(view):
        """A read served from pages kept per change version (the inbox).

        Its statements run without a transaction (no BEGIN / COMMIT round trips; the
        version is read first, so a page is never older than its stamp), and the login
        check also reads the caller's change version (Actor.change_version).
        """
        view.versioned_read = True
        return view

    @staticmethod
    def answers_empty_pull(view):
        """The sync pull: the login check also reads the caller's change version and the
        tenant's sync counter (Actor.sync_counter), so a pull with nothing new in the
        caller's scopes is answered from that one round trip."""
        view.answers_empty_pull = True
        return view

    @staticmethod
    def writes_on_get(view=None, *, when=None):
        """A GET that writes (an OAuth redirect signing someone in): it runs in a
        transaction committed at the end, like any write. Other GETs read outside one.

        `@writes_on_get(when=rule)`: only for callers `rule(actor)` says may write (a page
        of phones is audited for HQ and managers; a guide's own page writes nothing, so it
        reads outside a transaction). A write the rule did not foresee is refused, never
        lost (web.py)."""

        def mark(view):
            view.writes_on_get = when or True
            return view

        return mark(view) if view is not None else mark

    @staticmethod
    def replica_read(view):
        """A versioned read that a hot standby may answer (GUIDEAPP_REPLICA_URLS).

        The view asks `http.read_session(at_least=...)` for its session: a standby that has
        replayed the caller's changes up to that sequence, else the primary. The login check
        still runs on the primary, so a revoked login or a leaver loses access at once.
        """
        view.versioned_read = view.replica_read = True
        return view


class UTCDateTime(ma.fields.AwareDateTime):
    """An ISO-8601 time with its offset, stored and echoed in UTC."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default_timezone", None)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError as exc:  # 0001-01-01T00:00:00+00:01 is before year 1 in UTC
            raise ma.ValidationError("This time is out of range once converted to UTC.") from exc


class SerializedSize(ma.validate.Validator):
    """A free JSON value (dict / list of dicts) at most `max_bytes` once serialised."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes

    def __call__(self, value):
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > self.max_bytes:
            raise ma.ValidationError(f"At most {self.max_bytes} bytes of JSON ({size} sent).")
        return value


class Schema(dumping.Planned, ma.Schema):
    """Unknown fields are refused (marshmallow's RAISE) so typos never pass silently;
    answers are dumped by a plan made once per schema (guideapp/dumping.py)."""

    class Meta:
        unknown = ma.RAISE
