"""HQ's merchant shapes, the answer WeChat expects, and the decrypted resources we read."""

from marshmallow import EXCLUDE, fields, validate

from guideapp.extensions import Schema, UTCDateTime
from guideapp.pagination import CursorArgsSchema, page_schema

MCHID = validate.Regexp(r"^[0-9]{6,32}$", error="A WeChat Pay merchant id: 6-32 digits.")
APPID = validate.Regexp(r"^wx[0-9A-Za-z]{16}$", error="An appid: wx and 16 letters or digits.")


class PlatformKeySchema(Schema):
    serial = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={
            "description": "Wechatpay-Serial of this key: the public key id (PUB_KEY_ID_...) "
            "or the platform certificate's serial. Optional with a certificate (read from it)."
        },
    )
    public_key = fields.String(
        validate=validate.Length(min=1, max=8000),
        metadata={"description": "The WeChat Pay platform public key (PEM), or `certificate`."},
    )
    certificate = fields.String(
        load_only=True,
        validate=validate.Length(min=1, max=8000),
        metadata={"description": "A platform certificate (PEM); its public key is kept."},
    )
    source = fields.String(dump_only=True, metadata={"description": "public_key | certificate"})


class TerminalSchema(Schema):
    device_id = fields.String(required=True, validate=validate.Length(min=1, max=32))
    store_id = fields.String(required=True)


class MerchantSchema(Schema):
    id = fields.String(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    mchid = fields.String(required=True, validate=MCHID)
    appids = fields.List(
        fields.String(validate=APPID),
        load_default=list,
        validate=validate.Length(max=20),
        metadata={
            "description": "Appids orders are placed with; a notification for another "
            "is refused. Empty: any."
        },
    )
    apiv3_key = fields.String(
        load_only=True,
        validate=validate.Regexp(r"^[\x21-\x7e]{32}$", error="The APIv3 key is 32 characters."),
        metadata={"description": "Write-only: never returned (see apiv3_key_set)."},
    )
    apiv3_key_set = fields.Boolean(dump_only=True)
    platform_keys = fields.List(
        fields.Nested(PlatformKeySchema),
        required=True,
        validate=validate.Length(min=1, max=5),
        metadata={"description": "Several while WeChat rotates its key."},
    )
    store_id = fields.String(
        allow_none=True,
        load_default=None,
        metadata={"description": "Where a payment is booked when attach and terminal name none."},
    )
    terminals = fields.List(
        fields.Nested(TerminalSchema),
        load_default=list,
        validate=validate.Length(max=2000),
        metadata={"description": "scene_info.device_id -> store."},
    )
    active = fields.Boolean(load_default=True)
    notify_url = fields.String(
        dump_only=True, metadata={"description": "The notify_url to give WeChat Pay."}
    )
    created_at = UTCDateTime(dump_only=True)
    updated_at = UTCDateTime(dump_only=True)


class MerchantCreateSchema(MerchantSchema):
    apiv3_key = fields.String(
        load_only=True,
        required=True,
        validate=validate.Regexp(r"^[\x21-\x7e]{32}$", error="The APIv3 key is 32 characters."),
        metadata={"description": "Write-only: never returned (see apiv3_key_set)."},
    )


MerchantPageSchema = page_schema(MerchantSchema, "MerchantPage")


class MerchantArgsSchema(CursorArgsSchema):
    pass


class FailSchema(Schema):
    """What WeChat Pay expects when a notification is not accepted (it retries)."""

    code = fields.String(required=True, metadata={"example": "FAIL"})
    message = fields.String(required=True)


# --- decrypted resources (WeChat adds fields over time: unknown ones are ignored) ----------


class _Loose(Schema):
    class Meta:
        unknown = EXCLUDE


class _Amount(_Loose):
    total = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10**12))
    currency = fields.String(load_default="CNY")


class _Payer(_Loose):
    openid = fields.String(validate=validate.Length(min=1, max=128))
    sub_openid = fields.String(validate=validate.Length(min=1, max=128))
    sp_openid = fields.String(validate=validate.Length(min=1, max=128))
    unionid = fields.String(validate=validate.Length(min=1, max=64))


class _Scene(_Loose):
    device_id = fields.String(validate=validate.Length(max=32))


class TransactionSchema(_Loose):
    """A transaction (direct: mchid, appid, payer.openid; partner: sub_mchid, sub_appid,
    payer.sub_openid)."""

    transaction_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    mchid = fields.String(validate=validate.Length(max=32))
    sub_mchid = fields.String(validate=validate.Length(max=32))
    appid = fields.String(validate=validate.Length(max=32))
    sub_appid = fields.String(validate=validate.Length(max=32))
    sp_appid = fields.String(validate=validate.Length(max=32))
    trade_state = fields.String(required=True)
    success_time = UTCDateTime()
    amount = fields.Nested(_Amount, required=True)
    payer = fields.Nested(_Payer, load_default=dict)
    attach = fields.String(validate=validate.Length(max=128))
    scene_info = fields.Nested(_Scene, load_default=dict)


class _RefundAmount(_Loose):
    total = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10**12))
    refund = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10**12))


class RefundSchema(_Loose):
    transaction_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    refund_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    mchid = fields.String(validate=validate.Length(max=32))
    sub_mchid = fields.String(validate=validate.Length(max=32))
    refund_status = fields.String(required=True)
    success_time = UTCDateTime()
    amount = fields.Nested(_RefundAmount, required=True)
