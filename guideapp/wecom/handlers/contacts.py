"""change_external_contact events (https://developer.work.weixin.qq.com/document/path/92130):
a customer added a guide, the guide edited or deleted them, the customer deleted the guide.

Each runs in its event's one unit of work (events.py) and is idempotent on its own too: a
replay finds the relationship already recorded (same guide, customer and add time) and
does nothing again; recruits, tags, tasks and alerts are each once by their own keys.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.db import utcnow
from guideapp.members import binding as bindings
from guideapp.members.models import Member
from guideapp.members.signals import member_recruited
from guideapp.org.models import Staff
from guideapp.tasks.service import add_event_task
from guideapp.wecom import contact_ways, customers, welcomes
from guideapp.wecom.clients import WecomClient, WecomRefused, WecomUnavailable
from guideapp.wecom.customers import Customer, Recorded
from guideapp.wecom.events import handles
from guideapp.wecom.models import WecomAlert, WecomEvent
from guideapp.wecom.service import config_row, contact_client, settings_of

log = logging.getLogger(__name__)

NOT_A_CONTACT = 84061  # 不存在外部联系人的关系: they are gone again by the time we ask
TASK_SOURCE = "wecom"
WELCOME_USED = 41051  # the code was used (by us before a crash) or they started chatting


def event_time(event: WecomEvent) -> datetime:
    """The event's CreateTime (what WeCom's 20 s are measured from); when it was stored if
    WeCom sent none."""
    try:
        return datetime.fromtimestamp(int(event.fields["CreateTime"]), tz=timezone.utc)
    except (KeyError, TypeError, ValueError):
        return event.received_at


def _pair(event: WecomEvent) -> tuple[str, str] | None:
    userid, external_userid = event.fields.get("UserID"), event.fields.get("ExternalUserID")
    if not userid or not external_userid:
        return None
    return str(userid)[:64], str(external_userid)[:64]


def fetch_customer(client: WecomClient, userid: str, external_userid: str) -> Customer:
    """externalcontact/get (92114): name, unionid, and this user's follow (remark, state).
    Busy or rate-limited WeCom raises WecomUnavailable: the event is retried later."""
    try:
        answer = client.call(
            "externalcontact/get",
            "get",
            "externalcontact/get",
            params={"external_userid": external_userid},
        )
    except WecomRefused as refused:
        if refused.errcode != NOT_A_CONTACT:
            raise
        return Customer(external_userid=external_userid)  # the event itself is WeCom's word
    follow = next((f for f in answer.get("follow_user") or [] if f.get("userid") == userid), None)
    customer = Customer.of(answer.get("external_contact") or {}, follow)
    customer.external_userid = external_userid
    return customer


@handles("change_external_contact", "add_external_contact")
@handles("change_external_contact", "add_half_external_contact")
def customer_added(session: Session, event: WecomEvent) -> dict:
    pair = _pair(event)
    if pair is None:
        return {"ignored": "no UserID / ExternalUserID"}
    userid, external_userid = pair
    at = event_time(event)
    seen = customers.find_contact(session, event.tenant_id, userid, external_userid)
    if seen is not None and seen.status == "active" and seen.added_at == at:
        return {"replay": True, "contact_id": seen.id, "member_id": seen.member_id}
    client = contact_client(session, event.tenant_id)
    corp_id = config_row(session, event.tenant_id).corp_id  # type: ignore[union-attr]
    customer = fetch_customer(client, userid, external_userid)
    state = event.fields.get("State") or customer.state
    recorded = customers.record(
        session,
        tenant_id=event.tenant_id,
        corp_id=corp_id,  # type: ignore[arg-type]
        userid=userid,
        customer=customer,
        state=state,
        added_at=at,
        take_over_unlocked=True,
    )
    recruited = recorded.bound and recorded.was_unbound
    if recruited:  # once per member: commissions keep one recruit (and apply the fraud rules)
        member_recruited.send(
            session, member=recorded.member, guide=recorded.guide, source="wecom", at=at
        )
    # A guide who just reached the way's daily cap is dropped from it now, not at the tick.
    contact_ways.recheck_after_add(session, contact_way_id=recorded.contact.contact_way_id)
    result = _summary(recorded)
    result["recruited"] = recruited
    # Last: WeCom sends a welcome once, so nothing of ours should fail after it.
    result["welcome"] = _welcome(session, client, event, recorded, at)
    return result


def _summary(recorded: Recorded) -> dict:
    return {
        "member_id": recorded.member.id,
        "member_created": recorded.member_created,
        "contact_id": recorded.contact.id,
        "guide_id": recorded.guide.id if recorded.guide is not None else None,
        "contact_way_id": recorded.way.id if recorded.way is not None else None,
        "code_id": recorded.code.id if recorded.code is not None else None,
        "bound": recorded.bound,
    }


def _welcome(session: Session, client: WecomClient, event, recorded: Recorded, at) -> str:
    """'sent', 'none' (no welcome_code, or the code has no welcome), 'used' (41051), or
    'task' (too late, or WeCom would not take it: the guide greets them by hand)."""
    code = event.fields.get("WelcomeCode")
    welcome = welcomes.of_code(session, recorded.code.id) if recorded.code is not None else None
    if not code or welcome is None:
        return "none"
    window = settings_of(session).welcome_window_s
    if (utcnow() - at).total_seconds() > window:
        return _greeting_task(session, recorded, at, why="arrived too late to send")
    try:
        sent = welcomes.send(session, client, welcome_code=str(code), welcome=welcome)
    except WecomRefused as refused:
        if refused.errcode == WELCOME_USED:
            return "used"
        return _greeting_task(session, recorded, at, why=f"was refused ({refused.errcode})")
    except WecomUnavailable:
        # A retry of the event would come after the code's 20 s: greet by hand now.
        return _greeting_task(session, recorded, at, why="could not reach WeCom")
    return "sent" if sent else "none"


def _greeting_task(session: Session, recorded: Recorded, at: datetime, *, why: str) -> str:
    guide = recorded.guide
    if guide is None or guide.store_id is None:
        return "late"  # nobody of ours to greet them: the contact's user id is unmapped
    name = recorded.member.name or "新客户"
    now = utcnow()
    add_event_task(
        session,
        tenant_id=recorded.member.tenant_id,
        store_id=guide.store_id,
        assignee_id=guide.id,
        source=TASK_SOURCE,
        dedupe_key=f"wecom:greet:{recorded.contact.id}:{int(at.timestamp())}",
        title=f"问候新客户 {name}",
        brief=f"{name} 刚在企业微信添加了你；欢迎语{_why_zh(why)}，请主动打个招呼。",
        starts_at=now,
        due_at=now + timedelta(days=1),
        member_ids=[recorded.member.id],
    )
    log.info("wecom welcome not sent", extra={"contact": recorded.contact.id, "why": why})
    return "task"


def _why_zh(why: str) -> str:
    if why.startswith("arrived"):
        return "未能在 20 秒内发出"
    if why.startswith("could not"):
        return "发送时企业微信无法连接"
    return "被企业微信拒绝"


@handles("change_external_contact", "edit_external_contact")
def customer_edited(session: Session, event: WecomEvent) -> dict:
    """The guide edited the customer (remark, tags): refresh what we keep of them. We keep
    no avatar (members have none); the name only fills an empty one."""
    pair = _pair(event)
    if pair is None:
        return {"ignored": "no UserID / ExternalUserID"}
    userid, external_userid = pair
    client = contact_client(session, event.tenant_id)
    customer = fetch_customer(client, userid, external_userid)
    contact = customers.find_contact(session, event.tenant_id, userid, external_userid)
    if contact is None:  # a customer from before we were connected: record them now
        corp_id = config_row(session, event.tenant_id).corp_id  # type: ignore[union-attr]
        recorded = customers.record(
            session,
            tenant_id=event.tenant_id,
            corp_id=corp_id,  # type: ignore[arg-type]
            userid=userid,
            customer=customer,
            state=customer.state,
            added_at=customer.added_at or event_time(event),
            take_over_unlocked=False,
        )
        return {**_summary(recorded), "recorded": True}
    contact.remark = customer.remark or None
    member = session.get_one(Member, contact.member_id)
    if not member.name and customer.name:
        member.name = customer.name
    session.flush()
    return {"contact_id": contact.id, "member_id": member.id, "remark": contact.remark}


@handles("change_external_contact", "del_external_contact")
def guide_deleted_customer(session: Session, event: WecomEvent) -> dict:
    """The guide deleted the customer: a risk alert for the store's manager and HQ, and a
    task for the manager. The binding stays until the manager decides. WeCom's own
    deletion by an in-service transfer (Source DELETE_BY_TRANSFER) is no risk: the
    relationship is marked transferred (transfers.py records the move itself)."""
    pair = _pair(event)
    if pair is None:
        return {"ignored": "no UserID / ExternalUserID"}
    userid, external_userid = pair
    at = event_time(event)
    contact = customers.find_contact(session, event.tenant_id, userid, external_userid)
    if event.fields.get("Source") == "DELETE_BY_TRANSFER":
        if contact is not None and contact.status == "active":
            contact.status, contact.ended_at = "transferred", at
            session.flush()
        return {"transferred": True, "contact_id": contact.id if contact else None}
    if contact is not None and contact.status == "active":
        contact.status, contact.ended_at = "deleted_by_guide", at
        session.flush()
    guide = (
        session.get(Staff, contact.guide_id)
        if contact is not None and contact.guide_id
        else customers.guide_of(session, event.tenant_id, userid)
    )
    member = session.get(Member, contact.member_id) if contact is not None else None
    store_id = (guide.store_id if guide is not None else None) or (member and member.store_id)
    alert = session.scalar(
        select(WecomAlert).where(
            WecomAlert.tenant_id == event.tenant_id, WecomAlert.event_id == event.id
        )
    )
    if alert is None:
        alert = WecomAlert(
            tenant_id=event.tenant_id,
            event_id=event.id,
            kind="deleted_by_guide",
            store_id=store_id,
            guide_id=guide.id if guide is not None else None,
            member_id=member.id if member is not None else None,
            userid=userid,
            external_userid=external_userid,
            customer_name=member.name if member is not None else "",
            happened_at=at,
        )
        session.add(alert)
        session.flush()
    task_id = _manager_task(session, alert, guide, member) if store_id else None
    return {"alert_id": alert.id, "contact_id": contact.id if contact else None, "task_id": task_id}


def _manager_task(session: Session, alert: WecomAlert, guide, member) -> str | None:
    """For the store's manager (the earliest active one); none without a manager: HQ
    still sees the alert."""
    manager_id = session.scalar(
        select(Staff.id)
        .where(
            Staff.tenant_id == alert.tenant_id,
            Staff.store_id == alert.store_id,
            Staff.role == "store_manager",
            Staff.state == "active",
        )
        .order_by(Staff.created_at, Staff.id)
        .limit(1)
    )
    if manager_id is None:
        return None
    who = guide.name if guide is not None else alert.userid
    name = alert.customer_name or "一位客户"
    now = utcnow()
    task, _ = add_event_task(
        session,
        tenant_id=alert.tenant_id,
        store_id=alert.store_id,  # type: ignore[arg-type]
        assignee_id=manager_id,
        source=TASK_SOURCE,
        dedupe_key=f"wecom:alert:{alert.id}",
        title=f"风险提醒：{who} 删除了客户 {name}",
        brief=f"导购 {who} 在企业微信删除了客户 {name}。请了解原因，必要时把会员转给其他导购。",
        starts_at=now,
        due_at=now + timedelta(days=2),
        member_ids=[member.id] if member is not None and member.store_id == alert.store_id else [],
    )
    return task.id


@handles("change_external_contact", "del_follow_user")
def customer_deleted_guide(session: Session, event: WecomEvent) -> dict:
    """The customer deleted the guide: the relationship ends; the member stays bound (the
    guide's attribution runs on) but the binding records the loss, which a `contact_lost`
    SOP rule turns into a win-back task for the store."""
    pair = _pair(event)
    if pair is None:
        return {"ignored": "no UserID / ExternalUserID"}
    userid, external_userid = pair
    at = event_time(event)
    contact = customers.find_contact(session, event.tenant_id, userid, external_userid)
    if contact is None:
        return {"unknown_contact": True}
    if contact.status == "active":
        contact.status, contact.ended_at = "deleted_by_customer", at
        session.flush()
    lost = None
    if contact.guide_id:
        member = session.get_one(Member, contact.member_id)
        lost = bindings.mark_lost(session, member=member, guide_id=contact.guide_id, at=at)
    return {"contact_id": contact.id, "member_id": contact.member_id, "lost": lost is not None}
