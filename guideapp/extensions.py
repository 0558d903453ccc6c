"""The API object, the Blueprint and the Schema every package builds on."""

import threading
from datetime import timezone

import marshmallow as ma
from cachetools import LRUCache
from flask import request
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint
from flask_smorest.exceptions import PreconditionRequired
from webargs.flaskparser import FlaskParser

from guideapp.errors import register_error_handlers


class Api(_Api):
    def _register_error_handlers(self):
        # errors.py owns the mapping for HTTP and domain errors alike.
        register_error_handlers(self._app)


class ArgumentsParser(FlaskParser):
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
        return super()._deserialize(value, attr, data, **kwargs).astimezone(timezone.utc)


class Schema(ma.Schema):
    """Unknown fields are refused (marshmallow's RAISE) so typos never pass silently."""

    class Meta:
        unknown = ma.RAISE
