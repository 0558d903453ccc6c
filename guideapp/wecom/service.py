"""A tenant's WeCom corp: HQ sets it (secrets write-only); the clients and the callback
crypto every WeCom call and callback of the tenant uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.db import utcnow
from guideapp.errors import Conflict
from guideapp.wecom.clients import SETTINGS_KEY, WecomClient, WecomNotConfigured, WecomSettings
from guideapp.wecom.models import WecomConfig

SECRET_FIELDS = ("contact_secret", "agent_secret", "callback_token", "callback_aes_key")
PLAIN_FIELDS = ("corp_id", "agent_id")
CALLBACK_PATH = "/api/v1/wecom/callback/{slug}"


def settings_of(session: Session) -> WecomSettings:
    return session.info[SETTINGS_KEY]


def config_row(session: Session, tenant_id: str) -> WecomConfig | None:
    return session.scalar(select(WecomConfig).where(WecomConfig.tenant_id == tenant_id))


def get_config(session: Session, *, actor) -> dict:
    policy.require(actor, "configure_wecom")
    return _present(config_row(session, actor.tenant_id))


def put_config(session: Session, *, actor, data: dict) -> dict:
    """Set the fields sent (null clears one); secrets left out are kept, since nobody can
    read them back to send them again."""
    policy.require(actor, "configure_wecom")
    if data.get("corp_id") and session.scalar(
        select(WecomConfig.id).where(
            WecomConfig.corp_id == data["corp_id"], WecomConfig.tenant_id != actor.tenant_id
        )
    ):
        raise Conflict(
            "Another brand already uses this WeCom corp with guideapp.",
            errors={"corp_id": ["Already configured for another brand."]},
        )
    box = settings_of(session).box
    row = config_row(session, actor.tenant_id)
    if row is None:
        row = WecomConfig(tenant_id=actor.tenant_id)
        session.add(row)
    for name, value in data.items():
        if name in SECRET_FIELDS and value is not None:
            value = box.seal(value)
        setattr(row, name, value)
    row.updated_by, row.updated_at = actor.staff_id, utcnow()
    session.flush()
    return _present(row)


def _present(row: WecomConfig | None) -> dict[str, Any]:
    def stored(name):
        return getattr(row, name) if row is not None else None

    answer: dict[str, Any] = {name: stored(name) for name in PLAIN_FIELDS}
    for name in SECRET_FIELDS:
        answer[f"{name}_set"] = stored(name) is not None
    answer["contacts_ready"] = bool(stored("corp_id") and stored("contact_secret"))
    answer["callback_ready"] = bool(
        stored("corp_id") and stored("callback_token") and stored("callback_aes_key")
    )
    answer["updated_at"] = stored("updated_at")
    return answer


def callback_path(slug: str) -> str:
    return CALLBACK_PATH.format(slug=slug)


# --- what calls and callbacks use ----------------------------------------------------


def contact_client(session: Session, tenant_id: str) -> WecomClient:
    """The customer-contact (客户联系) client: contact ways, customers, transfers, welcomes."""
    row = config_row(session, tenant_id)
    if row is None or not row.corp_id or not row.contact_secret:
        raise WecomNotConfigured(
            "This brand has not configured WeCom customer contact: HQ sets the corp id and "
            "the customer-contact secret (PUT /api/v1/wecom/config)."
        )
    settings = settings_of(session)
    return WecomClient(row.corp_id, settings.box.open(row.contact_secret), settings)


def callback_keys(session: Session, row: WecomConfig) -> tuple[str, str, str] | None:
    """(corp id, token, EncodingAESKey) a callback is checked with; None until all set."""
    if not (row.corp_id and row.callback_token and row.callback_aes_key):
        return None
    box = settings_of(session).box
    return row.corp_id, box.open(row.callback_token), box.open(row.callback_aes_key)
