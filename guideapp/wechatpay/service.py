"""HQ's WeChat Pay merchants, and the notifications that turn payments into members, orders
and commissions through the same members services POST /orders uses."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Mapping

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from marshmallow import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from wechatpayv3.utils import load_certificate, load_public_key

from guideapp import policy
from guideapp.db import utcnow
from guideapp.errors import Conflict, InvalidInput, NotFound
from guideapp.members.models import Order
from guideapp.members.orders import ingest_order, ingest_refund
from guideapp.org.models import Store, Tenant
from guideapp.pagination import paginate
from guideapp.policy.actor import Actor
from guideapp.policy.references import resolve_ids
from guideapp.secretbox import SecretBox
from guideapp.wechatpay.models import PayMerchant, PayTerminal
from guideapp.wechatpay.notification import (
    ForeignNotification,
    MerchantKeys,
    NotificationRefused,
    open_notification,
    read_body,
    serial_key,
)
from guideapp.wechatpay.schemas import RefundSchema, TransactionSchema

log = logging.getLogger(__name__)

CHANNEL = "wechat_pay"
ENV_MERCHANT_KEY = "env"
NOTIFY_PATH = "/api/v1/wechat/pay/notify/"

# --- HQ's merchants -------------------------------------------------------------------------


def list_merchants(session: Session, *, actor: Actor, limit: int, cursor: str | None) -> dict:
    stmt = policy.scoped_select(actor, PayMerchant)
    return paginate(session, stmt, [PayMerchant.id], limit=limit, cursor=cursor)


def get_merchant(session: Session, *, actor: Actor, merchant_id: str) -> PayMerchant:
    return policy.get_visible(session, actor, PayMerchant, merchant_id, label="Merchant")


def create_merchant(session: Session, *, actor: Actor, box: SecretBox, data: dict) -> PayMerchant:
    merchant = PayMerchant(tenant_id=actor.tenant_id)
    policy.require_write(actor, merchant, "create")
    _apply(session, actor, box, merchant, data)
    session.add(merchant)
    session.flush()
    _set_terminals(session, merchant, data["terminals"])
    return merchant


def update_merchant(
    session: Session, *, actor: Actor, box: SecretBox, merchant_id: str, data: dict
) -> PayMerchant:
    """Replace the merchant's settings; an absent apiv3_key keeps the one stored."""
    merchant = policy.get_writable(session, actor, PayMerchant, merchant_id, "change")
    _apply(session, actor, box, merchant, data)
    merchant.updated_at = utcnow()
    session.flush()
    _set_terminals(session, merchant, data["terminals"])
    return merchant


def terminals_of(session: Session, merchant: PayMerchant) -> list[dict]:
    rows = session.execute(
        select(PayTerminal.device_id, PayTerminal.store_id)
        .where(PayTerminal.merchant_id == merchant.id)
        .order_by(PayTerminal.device_id)
    )
    return [{"device_id": d, "store_id": s} for d, s in rows]


def present(session: Session, merchant: PayMerchant, *, base_url: str) -> dict:
    """The merchant as HQ sees it: never the APIv3 key, only whether one is set."""
    return {
        "id": merchant.id,
        "name": merchant.name,
        "mchid": merchant.mchid,
        "appids": merchant.appids,
        "apiv3_key_set": bool(merchant.apiv3_key_sealed),
        "platform_keys": merchant.platform_keys,
        "store_id": merchant.store_id,
        "terminals": terminals_of(session, merchant),
        "active": merchant.active,
        "notify_url": base_url.rstrip("/") + NOTIFY_PATH + merchant.id,
        "created_at": merchant.created_at,
        "updated_at": merchant.updated_at,
    }


def _apply(session: Session, actor: Actor, box: SecretBox, merchant: PayMerchant, data) -> None:
    taken = session.scalar(
        select(PayMerchant.id).where(
            PayMerchant.tenant_id == actor.tenant_id,
            PayMerchant.mchid == data["mchid"],
            PayMerchant.id != (merchant.id or ""),
        )
    )
    if taken:
        raise Conflict(errors={"mchid": ["Another merchant of yours has this mchid."]})
    wanted_stores = [data["store_id"]] if data.get("store_id") else []
    wanted_stores += [t["store_id"] for t in data["terminals"]]
    resolve_ids(session, actor, Store, wanted_stores, field="store_id", load=False)
    devices = [t["device_id"] for t in data["terminals"]]
    if len(set(devices)) != len(devices):
        raise InvalidInput(errors={"terminals": ["Each device_id once."]})
    merchant.name = data["name"]
    merchant.mchid = data["mchid"]
    merchant.appids = list(dict.fromkeys(data["appids"]))
    merchant.platform_keys = _platform_keys(data["platform_keys"])
    merchant.store_id = data.get("store_id")
    merchant.active = data["active"]
    if data.get("apiv3_key"):
        merchant.apiv3_key_sealed = box.seal(data["apiv3_key"])


def _platform_keys(given: list[dict]) -> list[dict]:
    """Each key loaded and checked (RSA, 2048 bits or more) and kept as a PEM public key."""
    kept: list[dict] = []
    errors: dict = {}
    for index, item in enumerate(given):
        try:
            kept.append(_platform_key(item))
        except ValueError as problem:
            errors[index] = [str(problem)]
    if errors:
        raise InvalidInput(errors={"platform_keys": errors})
    serials = [serial_key(k["serial"]) for k in kept]
    if len(set(serials)) != len(serials):
        raise InvalidInput(errors={"platform_keys": ["Each serial once."]})
    return kept


def _platform_key(item: dict) -> dict:
    if bool(item.get("public_key")) == bool(item.get("certificate")):
        raise ValueError("Give either public_key or certificate.")
    if item.get("certificate"):
        certificate = load_certificate(item["certificate"])
        if certificate is None:
            raise ValueError("Not a PEM certificate.")
        key, source = certificate.public_key(), "certificate"
        serial = format(certificate.serial_number, "X")
        if item.get("serial") and serial_key(item["serial"]) != serial:
            raise ValueError(f"The certificate's serial is {serial}.")
    else:
        if not item.get("serial"):
            raise ValueError("A public key needs its serial (the public key id).")
        try:
            key = load_public_key(item["public_key"])
        except Exception:  # wechatpayv3 raises a bare Exception for an unreadable key
            raise ValueError("Not a PEM public key.") from None
        source, serial = "public_key", item["serial"].strip()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise ValueError("WeChat Pay platform keys are RSA keys of 2048 bits or more.")
    pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    return {"serial": serial, "public_key": pem, "source": source}


def _set_terminals(session: Session, merchant: PayMerchant, terminals: list[dict]) -> None:
    session.execute(delete(PayTerminal).where(PayTerminal.merchant_id == merchant.id))
    session.add_all(
        PayTerminal(
            tenant_id=merchant.tenant_id,
            merchant_id=merchant.id,
            device_id=t["device_id"],
            store_id=t["store_id"],
        )
        for t in terminals
    )
    session.flush()


# --- notifications --------------------------------------------------------------------------


def merchant_keys(
    session: Session, merchant_key: str, *, box: SecretBox, env: Mapping[str, str]
) -> MerchantKeys:
    """The keys behind a notify URL: a merchant row, or `env` for the environment's one."""
    gone = NotFound("No WeChat Pay merchant at this notify URL.")
    if merchant_key == ENV_MERCHANT_KEY:
        keys = _env_keys(session, env)
        if keys is None:
            raise gone
        return keys
    merchant = session.get(PayMerchant, merchant_key)
    if merchant is None or not merchant.active:
        raise gone
    return MerchantKeys(
        merchant_id=merchant.id,
        tenant_id=merchant.tenant_id,
        mchid=merchant.mchid,
        appids=frozenset(merchant.appids),
        apiv3_key=box.open(merchant.apiv3_key_sealed),
        platform_keys={serial_key(k["serial"]): k["public_key"] for k in merchant.platform_keys},
        store_id=merchant.store_id,
    )


def _env_keys(session: Session, env: Mapping[str, str]) -> MerchantKeys | None:
    if not (env.get("mchid") and env.get("apiv3_key") and env.get("public_key_id")):
        return None
    pem = env.get("public_key") or ""
    if not pem and env.get("public_key_file"):
        with open(env["public_key_file"], encoding="utf-8") as file:
            pem = file.read()
    tenants = select(Tenant.id)
    if env.get("tenant"):
        tenants = tenants.where(Tenant.slug == env["tenant"])
    found = session.scalars(tenants.limit(2)).all()
    if len(found) != 1:  # no tenant named, and more than one: which one is ambiguous
        return None
    store_id = None
    if env.get("store_code"):
        store_id = session.scalar(
            select(Store.id).where(Store.tenant_id == found[0], Store.code == env["store_code"])
        )
    return MerchantKeys(
        merchant_id=ENV_MERCHANT_KEY,
        tenant_id=found[0],
        mchid=env["mchid"],
        appids=frozenset(a.strip() for a in (env.get("appids") or "").split(",") if a.strip()),
        apiv3_key=env["apiv3_key"],
        platform_keys={serial_key(env["public_key_id"]): pem},
        store_id=store_id,
    )


def receive_notification(
    session: Session,
    *,
    merchant_key: str,
    headers: Mapping[str, str],
    body: bytes,
    box: SecretBox,
    env: Mapping[str, str],
    window_s: int,
    max_depth: int,
    now: datetime | None = None,
) -> str:
    """Verify, decrypt and record one notification; returns what happened (`recorded`,
    `replayed`, `ignored`). Refusals raise; they write nothing (the request rolls back)."""
    now = now or utcnow()
    text, envelope = read_body(body, max_depth=max_depth)
    keys = merchant_keys(session, merchant_key, box=box, env=env)
    note = open_notification(keys, headers, text, envelope, now=now.timestamp(), window_s=window_s)
    event = note["event_type"]
    if event == "TRANSACTION.SUCCESS":
        outcome = _record_payment(session, keys, note["resource"], now)
    elif event == "REFUND.SUCCESS":
        outcome = _record_refund(session, keys, note["resource"], now)
    else:  # REFUND.ABNORMAL, REFUND.CLOSED...: verified, acknowledged, nothing to record
        outcome = "ignored"
    log.info(
        "wechat pay notification",
        extra={
            "merchant_id": keys.merchant_id,
            "notification_id": note["id"],
            "event_type": event,
            "outcome": outcome,
        },
    )
    return outcome


def _load(schema, resource: dict, what: str) -> dict:
    try:
        return schema.load(resource)
    except ValidationError as error:
        raise NotificationRefused(
            f"The decrypted {what} is not one we can read.", errors=error.messages_dict
        ) from None


_TRANSACTION, _REFUND = TransactionSchema(), RefundSchema()


def _check_merchant(keys: MerchantKeys, resource: dict) -> None:
    """A notification signed for another merchant (or app) is not ours to record."""
    mchid = resource.get("sub_mchid") or resource.get("mchid")
    if mchid != keys.mchid:
        raise ForeignNotification(f"This notification is for merchant {mchid}, not {keys.mchid}.")
    appid = resource.get("sub_appid") or resource.get("appid")
    if keys.appids and appid is not None and appid not in keys.appids:
        raise ForeignNotification(f"Appid {appid} is not one of this merchant's apps.")


def _record_payment(session: Session, keys: MerchantKeys, resource: dict, now) -> str:
    paid = _load(_TRANSACTION, resource, "transaction")
    _check_merchant(keys, paid)
    if paid["trade_state"] != "SUCCESS":
        return "ignored"
    identity = _payer_identity(paid)
    if identity is None or "success_time" not in paid:
        raise NotificationRefused(
            "A successful transaction names its app, its payer and its success_time."
        )
    if paid["amount"]["currency"] != "CNY":
        raise InvalidInput(errors={"amount": ["Only CNY payments are recorded (fen)."]})
    data = {
        "channel": CHANNEL,
        "order_no": paid["transaction_id"],
        "amount_fen": paid["amount"]["total"],
        "ordered_at": paid["success_time"],
        "identities": dict([identity]),
        "unionid": paid["payer"].get("unionid"),
        "store_id": _store_for(session, keys, paid),
    }
    _, created = _retrying_once(
        session, lambda: ingest_order(session, tenant_id=keys.tenant_id, data=data, now=now)
    )
    return "recorded" if created else "replayed"


def _payer_identity(paid: dict) -> tuple[str, str] | None:
    """The payer as a member identity: an openid lives in one app's namespace, the kind
    "openid:<appid>" scans and logins use too (partner mode: the sub-merchant's own app)."""
    payer = paid["payer"]
    for appid, openid in (
        (paid.get("sub_appid"), payer.get("sub_openid")),
        (paid.get("appid"), payer.get("openid")),
        (paid.get("sp_appid"), payer.get("sp_openid")),
    ):
        if appid and openid:
            return f"openid:{appid}", openid
    return None


def _record_refund(session: Session, keys: MerchantKeys, resource: dict, now) -> str:
    refund = _load(_REFUND, resource, "refund")
    _check_merchant(keys, refund)
    if refund["refund_status"] != "SUCCESS":
        return "ignored"
    paid_fen = session.scalar(
        select(Order.amount_fen).where(
            Order.tenant_id == keys.tenant_id,
            Order.channel == CHANNEL,
            Order.order_no == refund["transaction_id"],
        )
    )
    if paid_fen is not None and paid_fen != refund["amount"]["total"]:
        raise Conflict(
            f"Transaction {refund['transaction_id']} was recorded with {paid_fen} fen,"
            f" the refund says {refund['amount']['total']}."
        )
    data = {
        "channel": CHANNEL,
        "order_no": refund["transaction_id"],
        "refund_no": refund["refund_id"],
        "amount_fen": refund["amount"]["refund"],
        "refunded_at": refund.get("success_time"),
    }
    _, created = _retrying_once(
        session,
        lambda: ingest_refund(session, tenant_id=keys.tenant_id, data=data, now=now),
    )
    return "recorded" if created else "replayed"


def _store_for(session: Session, keys: MerchantKeys, paid: dict) -> str | None:
    """attach (a store code) -> the terminal's store -> the merchant's default store; None
    lets the order take the member's own store. An attach that is no store code is the
    merchant's own data: it is ignored, not refused (WeChat would retry forever)."""
    attach = (paid.get("attach") or "").strip()
    if attach:
        store_id = session.scalar(
            select(Store.id).where(Store.tenant_id == keys.tenant_id, Store.code == attach)
        )
        if store_id:
            return store_id
    device = paid["scene_info"].get("device_id")
    if device and keys.merchant_id != ENV_MERCHANT_KEY:
        store_id = session.scalar(
            select(PayTerminal.store_id).where(
                PayTerminal.merchant_id == keys.merchant_id, PayTerminal.device_id == device
            )
        )
        if store_id:
            return store_id
    return keys.store_id


def _retrying_once(session: Session, record):
    """Two deliveries of one notification at once: the second meets the first's unique
    row (its savepoint rolls back), and recording again finds it: a replay, not an error."""
    try:
        with session.begin_nested():
            return record()
    except IntegrityError:
        return record()
