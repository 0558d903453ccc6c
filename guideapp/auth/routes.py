"""Login, refresh, logout and who-am-I."""

from flask import current_app, request
from flask.views import MethodView

from guideapp.auth import service
from guideapp.auth.schemas import LoginSchema, RefreshSchema, TokenPairSchema
from guideapp.extensions import Blueprint
from guideapp.org import service as org
from guideapp.org.schemas import MeSchema
from guideapp.phones import normalize_phone
from guideapp.http import current_actor, db_session

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="Login and tokens")


@blp.route("/auth/login")
class Login(MethodView):
    @blp.public
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenPairSchema)
    @blp.alt_response(401, description="Phone or password is wrong.")
    @blp.alt_response(429, description="Too many failed logins for this phone or address.")
    def post(self, args):
        """Log in with phone and password"""
        return service.login(
            db_session(),
            phone=normalize_phone(args["phone"]) or args["phone"],
            password=args["password"],
            address=request.remote_addr or "unknown",
            config=current_app.config,
        )


@blp.route("/auth/refresh")
class Refresh(MethodView):
    @blp.public
    @blp.arguments(RefreshSchema)
    @blp.response(200, TokenPairSchema)
    @blp.alt_response(401, description="Refresh token invalid, expired or revoked.")
    def post(self, args):
        """Trade a refresh token for a new token pair (the old one stops working)"""
        return service.refresh(
            db_session(), refresh_token=args["refresh_token"], config=current_app.config
        )


@blp.route("/auth/logout")
class Logout(MethodView):
    @blp.response(204)
    def post(self):
        """End this login: its refresh and access tokens stop working at once"""
        service.logout(db_session(), actor=current_actor())


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, MeSchema)
    def get(self):
        """Who I am: my staff record, my store and my tenant"""
        return org.describe_actor(db_session(), actor=current_actor())
