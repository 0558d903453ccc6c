"""The API object, the Blueprint and the Schema every package builds on."""

import json
import threading
from datetime import timezone

import marshmallow as ma
from cachetools import LRUCache
from flask import current_app, request
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint
from flask_smorest.exceptions import PreconditionRequired
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request

from guideapp import untrusted
from guideapp.errors import register_error_handlers


class Api(_Api):
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


class Blueprint(_Blueprint):
    """flask-smorest Blueprint; `public` marks a view that needs no login.

    ETags are checked after the record is found, so a foreign id is 404 whatever the
    headers: flask-smorest asks for If-Match (428) before the view runs; here check_etag
    asks for it once the record is known to be visible (404, then 428 / 412).
    """

    ARGUMENTS_PARSER = ArgumentsParser()

    def arguments(self, schema, *args, **kwargs):
        """As flask-smorest's, with a schema class instantiated once, not per request."""
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)

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
    def versioned_read(view):
        """A read served from pages kept per change version (the inbox).

        Its statements run without a transaction (no BEGIN / COMMIT round trips; the
        version is read first, so a page is never older than its stamp), and the login
        check also reads the caller's change version (Actor.change_version).
        """
        view.versioned_read = True
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


class Schema(ma.Schema):
    """Unknown fields are refused (marshmallow's RAISE) so typos never pass silently."""

    class Meta:
        unknown = ma.RAISE
