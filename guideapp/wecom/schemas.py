"""The WeCom configuration HQ sets (secrets write-only), callbacks' query, stored events."""

from typing import Any

from marshmallow import fields, validate

from guideapp.extensions import Schema, UTCDateTime
from guideapp.pagination import CursorArgsSchema, page_schema
from guideapp.wecom.models import ALERT_KINDS, EVENT_STATES, TRANSFER_STATES

_secret: dict[str, Any] = dict(load_only=True, allow_none=True)


class WecomConfigUpdateSchema(Schema):
    corp_id = fields.String(
        allow_none=True,
        validate=validate.Regexp(
            r"^w[wx][0-9a-zA-Z]{16}$", error="A corp id is ww + 16 letters or digits."
        ),
        metadata={"description": "企业ID (My Company > Company Info)."},
    )
    contact_secret = fields.String(
        **_secret,
        validate=validate.Regexp(
            r"^[0-9A-Za-z_-]{16,64}$", error="A WeCom secret: 16-64 letters, digits, _ or -."
        ),
        metadata={"description": "客户联系 Secret (Customer Contact > API)."},
    )
    agent_id = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=1, max=2**31 - 1),
        metadata={"description": "AgentId of the self-built app guides use."},
    )
    agent_secret = fields.String(
        **_secret,
        validate=validate.Regexp(
            r"^[0-9A-Za-z_-]{16,64}$", error="A WeCom secret: 16-64 letters, digits, _ or -."
        ),
        metadata={"description": "That app's Secret."},
    )
    callback_token = fields.String(
        **_secret,
        validate=validate.Regexp(r"^[0-9A-Za-z]{1,32}$", error="Up to 32 letters or digits."),
        metadata={"description": "The callback Token set in the WeCom console."},
    )
    callback_aes_key = fields.String(
        **_secret,
        validate=validate.Regexp(
            r"^[0-9A-Za-z]{43}$", error="An EncodingAESKey is 43 letters or digits."
        ),
        metadata={"description": "The callback EncodingAESKey set in the WeCom console."},
    )


class WecomConfigSchema(Schema):
    corp_id = fields.String(allow_none=True)
    agent_id = fields.Integer(allow_none=True)
    contact_secret_set = fields.Boolean()
    agent_secret_set = fields.Boolean()
    callback_token_set = fields.Boolean()
    callback_aes_key_set = fields.Boolean()
    contacts_ready = fields.Boolean(
        metadata={"description": "Contact ways and customers can be called."}
    )
    callback_ready = fields.Boolean(metadata={"description": "Callbacks can be verified."})
    callback_url = fields.String(
        metadata={"description": "What HQ enters as the callback URL (接收事件服务器 URL)."}
    )
    secrets_key_set = fields.Boolean(
        metadata={"description": "false: the server cannot store secrets (no key)."}
    )
    updated_at = UTCDateTime(allow_none=True)


class CallbackArgsSchema(Schema):
    msg_signature = fields.String(required=True, validate=validate.Length(max=64))
    timestamp = fields.String(required=True, validate=validate.Length(max=12))
    nonce = fields.String(required=True, validate=validate.Length(max=64))


class VerifyArgsSchema(CallbackArgsSchema):
    echostr = fields.String(required=True, validate=validate.Length(max=1024))


class EventArgsSchema(CursorArgsSchema):
    state = fields.String(validate=validate.OneOf(EVENT_STATES))
    event = fields.String(
        validate=validate.Length(max=64),
        metadata={"description": "Event or ChangeType, e.g. add_external_contact."},
    )


class WecomEventSchema(Schema):
    id = fields.String()
    event = fields.String()
    change_type = fields.String(allow_none=True)
    message = fields.Dict(attribute="fields", metadata={"description": "The decrypted fields."})
    state = fields.String(validate=validate.OneOf(EVENT_STATES))
    attempts = fields.Integer()
    next_attempt_at = UTCDateTime()
    error = fields.String(allow_none=True)
    result = fields.Dict(allow_none=True)
    received_at = UTCDateTime()
    processed_at = UTCDateTime(allow_none=True)


WecomEventPageSchema = page_schema(WecomEventSchema, "WecomEventPage")


class TransferArgsSchema(CursorArgsSchema):
    state = fields.List(
        fields.String(validate=validate.OneOf(TRANSFER_STATES)),
        metadata={"description": "Only these states (repeat: ?state=waiting&state=failed)."},
    )
    member_id = fields.String(validate=validate.Length(max=32))


class WecomTransferSchema(Schema):
    id = fields.String()
    member_id = fields.String()
    external_userid = fields.String()
    handover_userid = fields.String()
    takeover_userid = fields.String(allow_none=True)
    from_guide_id = fields.String(allow_none=True)
    to_guide_id = fields.String()
    from_store_id = fields.String(allow_none=True)
    to_store_id = fields.String(allow_none=True)
    kind = fields.String(
        allow_none=True,
        metadata={"description": "onjob (在职继承) or resigned (离职继承); null until sent."},
    )
    state = fields.String(validate=validate.OneOf(TRANSFER_STATES))
    reason = fields.String(
        allow_none=True,
        metadata={
            "description": "Why it failed: customer_refused, customer_limit_exceed, "
            "no_record, takeover_not_in_wecom, withdrawn, wecom_unavailable, errcode <n>."
        },
    )
    errcode = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    attempts = fields.Integer()
    requested_at = UTCDateTime()
    sent_at = UTCDateTime(allow_none=True)
    takeover_at = UTCDateTime(
        allow_none=True,
        metadata={"description": "WeCom's takeover time: expected while waiting, then actual."},
    )
    finished_at = UTCDateTime(allow_none=True)


WecomTransferPageSchema = page_schema(WecomTransferSchema, "WecomTransferPage")


class WelcomeSchema(Schema):
    code_id = fields.String(dump_only=True)
    text = fields.String(
        load_default="",
        validate=validate.Length(max=1300),  # WeCom: at most 4000 bytes of UTF-8
        metadata={"description": "The welcome text; empty with no material: no welcome."},
    )
    material_id = fields.String(
        allow_none=True,
        load_default=None,
        metadata={"description": "A library material with a URL, sent as a link card."},
    )
    updated_at = UTCDateTime(dump_only=True, allow_none=True)


class AlertArgsSchema(CursorArgsSchema):
    kind = fields.String(validate=validate.OneOf(ALERT_KINDS))
    store_id = fields.String(validate=validate.Length(max=32))


class WecomAlertSchema(Schema):
    id = fields.String()
    kind = fields.String(validate=validate.OneOf(ALERT_KINDS))
    store_id = fields.String(allow_none=True)
    guide_id = fields.String(allow_none=True)
    member_id = fields.String(allow_none=True)
    userid = fields.String(metadata={"description": "The guide's WeCom user id."})
    external_userid = fields.String()
    customer_name = fields.String()
    happened_at = UTCDateTime()


WecomAlertPageSchema = page_schema(WecomAlertSchema, "WecomAlertPage")


class CustomerSyncSchema(Schema):
    userid = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "One guide's WeCom user id; default: every mapped guide."},
    )


# --- contact ways (contact_ways.py) ----------------------------------------------------


class ContactWayArgsSchema(CursorArgsSchema):
    code_id = fields.String(validate=validate.Length(max=32))


class ContactWaySchema(Schema):
    id = fields.String()
    code_id = fields.String(allow_none=True, metadata={"description": "null: a guide's own way."})
    guide_id = fields.String(allow_none=True)
    kind = fields.String(metadata={"description": "single (type 1) | multi (type 2)"})
    state = fields.String(metadata={"description": "Sent back by WeCom when a customer adds."})
    config_id = fields.String(allow_none=True, metadata={"description": "null: not made yet."})
    qr_code = fields.String(allow_none=True, metadata={"description": "WeCom's QR image URL."})
    userids = fields.List(fields.String(), metadata={"description": "WeCom users named now."})
    sync_pending = fields.Method(
        "_pending", metadata={"description": "Waiting for the sync job (or its retry)."}
    )
    sync_due_at = UTCDateTime(allow_none=True)
    synced_at = UTCDateTime(allow_none=True)
    last_error = fields.String(
        allow_none=True, metadata={"description": "Why WeCom refused it, in words; null: fine."}
    )
    last_errcode = fields.Integer(allow_none=True)
    retired_at = UTCDateTime(allow_none=True, metadata={"description": "Deleted in WeCom."})
    created_at = UTCDateTime()
    updated_at = UTCDateTime()

    def _pending(self, way) -> bool:
        return way.sync_due_at is not None


ContactWayPageSchema = page_schema(ContactWaySchema, "WecomContactWayPage")


class WayRuleUpdateSchema(Schema):
    guide_ids = fields.List(
        fields.String(validate=validate.Length(max=32)),
        validate=validate.Length(max=100),
        metadata={"description": "Guides of the code's store it names; []: all of them."},
    )
    daily_cap = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=1, max=100_000),
        metadata={"description": "Customers per guide per local day via this code; null: none."},
    )
    backup_guide_id = fields.String(
        allow_none=True,
        validate=validate.Length(max=32),
        metadata={"description": "Named when every guide is capped or off duty."},
    )


class WayRuleSchema(WayRuleUpdateSchema):
    code_id = fields.String()
    updated_at = UTCDateTime(allow_none=True)
