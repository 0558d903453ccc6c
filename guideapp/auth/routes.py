"""Login (password or the mini-program's WeChat), refresh, logout and who-am-I; HQ's view
of staff members' WeChat bindings."""

from flask import current_app, request
from flask.views import MethodView

from guideapp.auth import member_login, service, wechat_login
from guideapp.auth.schemas import (
    LoginSchema,
    MemberSessionRequestSchema,
    MemberSessionSchema,
    RefreshSchema,
    StaffWechatSchema,
    TokenPairSchema,
    WechatBindSchema,
    WechatLoginSchema,
)
from guideapp.extensions import Blueprint
from guideapp.org import service as org
from guideapp.org.schemas import MeSchema
from guideapp.phones import normalize_phone
from guideapp.changelog.pages import kept_page
from guideapp.db import utcnow
from guideapp.http import conditional_json, current_actor, db_session, extension, json_bytes

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


@blp.route("/auth/wechat")
class WechatLogin(MethodView):
    @blp.public
    @blp.arguments(WechatLoginSchema)
    @blp.response(200, TokenPairSchema)
    @blp.alt_response(409, description="wechat_not_bound: bind first (POST /auth/wechat/bind).")
    @blp.alt_response(422, description="WeChat refused the code (invalid, used) or the appid.")
    @blp.alt_response(429, description="Too many failed logins from this address.")
    @blp.alt_response(503, description="WeChat is busy or cannot be reached; try again.")
    def post(self, args):
        """Log in with a mini-program wx.login code (staff whose WeChat is bound)"""
        return wechat_login.login(
            db_session(),
            appid=args["appid"],
            code=args["code"],
            address=request.remote_addr or "unknown",
            config=current_app.config,
        )


@blp.route("/auth/wechat/bind")
class WechatBind(MethodView):
    @blp.public
    @blp.arguments(WechatBindSchema)
    @blp.response(200, TokenPairSchema)
    @blp.alt_response(401, description="Phone or password is wrong, or the phone is no staff's.")
    @blp.alt_response(409, description="This WeChat or this staff account is bound elsewhere.")
    @blp.alt_response(422, description="WeChat refused a code, or the body is incomplete.")
    @blp.alt_response(429, description="Too many failed logins for this phone or address.")
    @blp.alt_response(503, description="WeChat is busy or cannot be reached; try again.")
    def post(self, args):
        """Bind my WeChat to my staff account (phone + password, or phone_code) and log in"""
        phone = args.get("phone")
        return wechat_login.bind(
            db_session(),
            appid=args["appid"],
            code=args["code"],
            phone=(normalize_phone(phone) or phone) if phone is not None else None,
            password=args.get("password"),
            phone_code=args.get("phone_code"),
            address=request.remote_addr or "unknown",
            config=current_app.config,
        )


@blp.route("/wechat/me/session")
class MemberSession(MethodView):
    @blp.public
    @blp.arguments(MemberSessionRequestSchema)
    @blp.response(200, MemberSessionSchema)
    @blp.alt_response(404, description="not_a_member: WeChat knows them, the brand does not.")
    @blp.alt_response(422, description="WeChat refused the code (invalid, used) or the appid.")
    @blp.alt_response(429, description="Too many refused codes from this address.")
    @blp.alt_response(503, description="WeChat is busy or cannot be reached; try again.")
    def post(self, args):
        """Sign a member in to member-facing pages with a mini-program wx.login code"""
        return member_login.start(
            db_session(),
            appid=args["appid"],
            code=args["code"],
            address=request.remote_addr or "unknown",
            config=current_app.config,
        )


@blp.route("/staff/<staff_id>/wechat")
class StaffWechat(MethodView):
    @blp.response(200, StaffWechatSchema)
    def get(self, staff_id):
        """Whether a staff member has WeChat bound (no openid is shown)"""
        return wechat_login.binding(db_session(), actor=current_actor(), staff_id=staff_id)

    @blp.response(204)
    def delete(self, staff_id):
        """Unbind a staff member's WeChat (HQ): it may bind again; their logins end now"""
        wechat_login.unbind(db_session(), actor=current_actor(), staff_id=staff_id)


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
    @blp.versioned_read
    @blp.response(200, MeSchema, headers={"ETag": {"schema": {"type": "string"}}})
    @blp.alt_response(304, description="Unchanged since the ETag sent in If-None-Match")
    def get(self):
        """Who I am: my staff record, my store and my tenant

        Send the last ETag back in If-None-Match: unchanged, it answers 304, no body.
        """
        actor = current_actor()
        # Kept per change version: every write to a staff member or a store (its tags
        # included) is logged in the tenant's scope, which the version covers; tenants
        # and regions are only ever created.
        kept = kept_page(
            extension("me_cache"),
            ("me", actor.staff_id, actor.role, actor.store_id, actor.region_id),
            version=actor.change_version,
            now=utcnow(),
            build=lambda: json_bytes(_ME.dump(org.describe_actor(db_session(), actor=actor))),
        )
        return conditional_json(kept.body, kept.etag)


_ME = MeSchema()
