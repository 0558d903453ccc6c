"""The API object, the Blueprint and the Schema every package builds on."""
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


class Schema(ma.Schema):
    """Unknown fields are refused (marshmallow's RAISE) so typos never pass silently."""

    class Meta:
        unknown = ma.RAISE

