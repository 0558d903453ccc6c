"""Login, refresh and token shapes."""

from marshmallow import fields, validate

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
