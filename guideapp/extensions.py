"""The API object, the Blueprint and the Schema every package builds on."""
from datetime import timezone

import marshmallow as ma
from flask import request
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint
from flask_smorest.exceptions import PreconditionRequired

from guideapp.errors import register_error_handlers


class Api(_Api):
    def _register_error_handlers(self):
        # errors.py owns the mapping for HTTP and domain errors alike.
        register_error_handlers(self._app)


class Blueprint(_Blueprint):
    """flask-smorest Blueprint; `public` marks a view that needs no login.

    ETags are checked after the record is found, so a foreign id is 404 whatever the
    headers: flask-smorest asks for If-Match (428) before the view runs; here check_etag
    asks for it once the record is known to be visible (404, then 428 / 412).
    """

    def arguments(self, schema, *args, **kwargs):
        """As flask-smorest's, with a schema class instantiated once, not per request."""
        return super().arguments(schema() if isinstance(schema, type) else schema,
                                 *args, **kwargs)

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

