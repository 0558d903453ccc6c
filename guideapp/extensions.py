"""The API object, the Blueprint and the Schema every package builds on."""
from datetime import timezone

import marshmallow as ma
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint

from guideapp.errors import register_error_handlers


class Api(_Api):
    def _register_error_handlers(self):
        # errors.py owns the mapping for HTTP and domain errors alike.
        register_error_handlers(self._app)


class Blueprint(_Blueprint):
    """flask-smorest Blueprint; `public` marks a view that needs no login."""

    @staticmethod
    def public(view):
        view = _Blueprint.doc(security=[])(view)
        view.public = True
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

