"""Login, refresh and token shapes."""

from marshmallow import ValidationError, fields, validate, validates_schema

from guideapp.extensions import Schema


class LoginSchema(Schema):
    phone = fields.String(
        required=True, validate=validate.Length(min=1, max=32), metadata={"example": "13800000003"}
    )
    password = fields.String(
        required=True,
        validate=validate.Length(min=1, max=128),
        metadata={"example": "demo-pass-2026"},
    )


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=200))


class TokenPairSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds."})
    refresh_token = fields.String(required=True)
    refresh_expires_at = fields.DateTime(required=True)


def _appid() -> fields.String:
    return fields.String(
        required=True,
        validate=validate.Regexp(r"^wx[0-9a-f]{16}$", error="An appid is wx + 16 hex digits."),
        metadata={
            "description": "The mini-program's appid (wx.getAccountInfoSync().miniProgram.appId): "
            "it names the brand.",
            "example": "wx00000000000000a1",
        },
    )


def _login_code() -> fields.String:
    return fields.String(
        required=True,
        validate=validate.Length(min=1, max=128),
        metadata={"description": "A fresh wx.login() code (each works once)."},
    )


class WechatLoginSchema(Schema):
    appid = _appid()
    code = _login_code()


class WechatBindSchema(Schema):
    """phone + password, or phone_code (WeChat's getPhoneNumber code of the staff phone)."""

    appid = _appid()
    code = _login_code()
    phone = fields.String(validate=validate.Length(min=1, max=32))
    password = fields.String(validate=validate.Length(min=1, max=128))
    phone_code = fields.String(
        validate=validate.Length(min=1, max=128),
        metadata={"description": "getPhoneNumber code; proves the staff phone instead."},
    )

    @validates_schema
    def _one_proof(self, data, **_kw):
        by_password = "phone" in data or "password" in data
        if "phone_code" in data and by_password:
            raise ValidationError(
                "Send phone and password, or phone_code, not both.", field_name="phone_code"
            )
        if "phone_code" not in data:
            missing = [f for f in ("phone", "password") if f not in data]
            if missing:
                raise ValidationError(
                    {f: ["Needed with password binding (or send phone_code)."] for f in missing}
                )


class StaffWechatSchema(Schema):
    staff_id = fields.String()
    bound = fields.Boolean()
    appid = fields.String(allow_none=True)
    unionid_known = fields.Boolean()
    bound_at = fields.DateTime(allow_none=True)


class MemberSessionRequestSchema(Schema):
    appid = _appid()
    code = _login_code()


class MemberSessionSchema(Schema):
    member_token = fields.String(
        required=True, metadata={"description": "Send it as X-Member-Token on member pages."}
    )
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds."})
    member_id = fields.String(required=True)
