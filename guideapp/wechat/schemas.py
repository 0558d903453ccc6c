"""The WeChat configuration HQ sets (secrets write-only) and the JS-SDK signature."""

from typing import Any

from marshmallow import fields, validate

from guideapp.extensions import Schema

_appid: dict[str, Any] = dict(
    allow_none=True,
    validate=validate.Regexp(r"^wx[0-9a-f]{16}$", error="An appid is wx + 16 hex digits."),
)
_secret: dict[str, Any] = dict(
    load_only=True,
    allow_none=True,
    validate=validate.Regexp(r"^[0-9A-Za-z]{32}$", error="32 letters or digits."),
)


class WechatConfigUpdateSchema(Schema):
    mp_appid = fields.String(**_appid, metadata={"description": "Mini-program AppID."})
    mp_secret = fields.String(**_secret, metadata={"description": "Mini-program AppSecret."})
    mp_code_page = fields.String(
        allow_none=True,
        validate=[
            validate.Length(max=128),
            validate.Regexp(
                r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$",
                error="A page path of the released mini-program, without a leading / "
                "(e.g. pages/scan/index).",
            ),
        ],
        metadata={
            "description": "The page mini-program codes open (null: the server's default, "
            "GUIDEAPP_WECHAT_MP_CODE_PAGE)."
        },
    )
    oa_appid = fields.String(**_appid, metadata={"description": "Official account AppID."})
    oa_secret = fields.String(**_secret, metadata={"description": "Official account AppSecret."})


class WechatConfigSchema(Schema):
    mp_appid = fields.String(allow_none=True)
    mp_secret_set = fields.Boolean()
    mp_code_page = fields.String(metadata={"description": "The page mini-program codes open."})
    oa_appid = fields.String(allow_none=True)
    oa_secret_set = fields.Boolean()
    mini_program_ready = fields.Boolean()
    official_account_ready = fields.Boolean()
    from_environment = fields.List(
        fields.String(), metadata={"description": "Fields that come from GUIDEAPP_WECHAT_*."}
    )
    secrets_key_set = fields.Boolean(
        metadata={"description": "false: the server cannot store secrets (no key)."}
    )
    updated_at = fields.DateTime(allow_none=True)


class JssdkRequestSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=40))
    url = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class JssdkConfigSchema(Schema):
    appId = fields.String()
    timestamp = fields.Integer()
    nonceStr = fields.String()
    signature = fields.String()
