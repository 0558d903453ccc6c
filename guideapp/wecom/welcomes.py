"""The welcome message (欢迎语) of a code: HQ sets it; an add event sends it with WeCom's
welcome_code (externalcontact/send_welcome_msg, https://developer.work.weixin.qq.com/document/path/92137),
which lives 20 s and sends once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp import policy
from guideapp.db import utcnow
from guideapp.materials.models import Material
from guideapp.policy.references import resolve_id
from guideapp.errors import InvalidInput
from guideapp.scans.models import ScanCode
from guideapp.wecom.clients import WecomClient
from guideapp.wecom.models import WecomWelcome


def of_code(session: Session, code_id: str) -> WecomWelcome | None:
    return session.scalar(select(WecomWelcome).where(WecomWelcome.code_id == code_id))


def get_welcome(session: Session, *, actor, code_id: str) -> dict:
    code = policy.get_visible(session, actor, ScanCode, code_id, label="Code")  # 404 first
    policy.require(actor, "configure_wecom")
    return _present(code, of_code(session, code.id))


def put_welcome(session: Session, *, actor, code_id: str, data: dict) -> dict:
    """Set the code's welcome: text and/or a material (sent as a link card); both empty
    removes it, so the code sends none."""
    code = policy.get_visible(session, actor, ScanCode, code_id, label="Code")  # 404 first
    policy.require(actor, "configure_wecom")
    material_id = data.get("material_id")
    if material_id is not None:
        material = resolve_id(session, actor, Material, material_id, field="material_id")
        if not material.url:
            raise InvalidInput(
                errors={"material_id": ["Only a material with a URL can be sent as a link card."]}
            )
    row = of_code(session, code.id)
    text = (data.get("text") or "").strip()
    if not text and material_id is None:
        if row is not None:
            session.delete(row)
            session.flush()
        return _present(code, None)
    if row is None:
        row = WecomWelcome(tenant_id=code.tenant_id, code_id=code.id)
        session.add(row)
    row.text, row.material_id = text, material_id
    row.updated_by, row.updated_at = actor.staff_id, utcnow()
    session.flush()
    return _present(code, row)


def _present(code: ScanCode, row: WecomWelcome | None) -> dict:
    return {
        "code_id": code.id,
        "text": row.text if row is not None else "",
        "material_id": row.material_id if row is not None else None,
        "updated_at": row.updated_at if row is not None else None,
    }


def send(session: Session, client: WecomClient, *, welcome_code: str, welcome: WecomWelcome):
    """One send_welcome_msg call; WecomRefused / WecomUnavailable as the client raises them."""
    body: dict = {"welcome_code": welcome_code}
    if welcome.text:
        body["text"] = {"content": welcome.text}
    material = session.get(Material, welcome.material_id) if welcome.material_id else None
    if material is not None and material.url and not material.archived:
        link = {"title": material.title[:128], "url": material.url}
        if material.cover_url:
            link["picurl"] = material.cover_url
        if material.body:
            link["desc"] = material.body[:512]
        body["attachments"] = [{"msgtype": "link", "link": link}]
    if "text" not in body and "attachments" not in body:
        return False  # the material went away: nothing left to send
    client.call("send_welcome_msg", "post", "externalcontact/send_welcome_msg", data=body)
    return True
