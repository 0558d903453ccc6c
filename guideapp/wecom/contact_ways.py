"""WeCom 「联系我」 ways of our codes, kept in step with WeCom by a job, never in a request.

A guide code gets a single-user way (add_contact_way type 1), a store code a multi-user
way (type 2) naming its guides; the guide an LBS code (or a fallback) routes to gets an
own single-user way (code_id None) the first time a scan needs it. Each way's `state`
("gw" + 20 base32 characters: WeCom allows 30) comes back in the add_external_contact
callback and names the row, so the customer is attributed to the code and guide.

Requests only write what they want (the row, `sync_due_at`) and wake the tenant's
`wecom.contact_ways` job: HQ's code edit and the consumer's scan never wait for WeCom nor
fail because of it. The job syncs each due way in a unit of its own: it computes the user
list the way should name now (`wanted`), then adds, updates or deletes it in WeCom.
WeCom busy or unreachable: the way stays due, retried with backoff; WeCom refusing
(a user id it does not know, an unverified account): the reason is kept on the way
(`last_error`, shown by GET /api/v1/wecom/contact-ways) until the next change.

Store codes' multi-user ways follow their rule (WecomWayRule): a guide who received
`daily_cap` customers through the way today (the tenant's day), or whose store is closed
now by its opening hours (off duty), is dropped from the list; when nobody is left the
backup guide is named. The scheduler tick re-checks every multi-user way, so guides come
back when their store opens and on the next day.

A crash between WeCom's answer to add_contact_way and our commit leaves a way in WeCom
that we do not know; the next sync adds another (the same state, so attribution holds).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from guideapp import jobs, policy
from guideapp.db import utcnow
from guideapp.errors import InvalidInput
from guideapp.jobs.models import Job
from guideapp.org import hours
from guideapp.org.models import Staff, Store, Tenant
from guideapp.pagination import paginate
from guideapp.policy.references import resolve_id, resolve_ids
from guideapp.scans.models import ScanCode
from guideapp.wecom.clients import WecomClient, WecomNotConfigured, WecomRefused, WecomUnavailable
from guideapp.wecom.models import WecomContact, WecomContactWay, WecomWayRule
from guideapp.wecom.service import config_row, contact_client, settings_of

log = logging.getLogger(__name__)

KIND = "wecom.contact_ways"
BATCH = 200
MAX_RETRY_S = 3600.0
MAX_USERS = 100  # "每个联系方式最多配置100个使用成员"
STATE_PREFIX = "gw"
STATE_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32, lower case
STATE_RANDOM = 20

# What WeCom's refusals mean for a contact way, in HQ's words (全局错误码, 92228).
REFUSALS = {
    40098: "a WeCom account it names is not activated or not verified (40098): the guide "
    "must activate WeCom and verify their real name",
    60111: "WeCom does not know a user id it names (60111): check the guide's WeCom user "
    "id (PATCH /api/v1/staff/<id> wecom_userid)",
    41041: "it names more than 100 WeCom users (41041)",
    40058: "WeCom refused its parameters (40058): state or remark too long, or a single "
    "way with other than one user",
    40097: "WeCom refused its state (40097)",
    48002: "the customer-contact secret may not manage contact ways (48002): check the "
    "app's permissions in the WeCom console",
}


# --- rows ------------------------------------------------------------------------------


def ready(session: Session, tenant_id: str) -> bool:
    """The tenant configured WeCom customer contact (else nothing here happens)."""
    row = config_row(session, tenant_id)
    return bool(row is not None and row.corp_id and row.contact_secret)


def new_state(session: Session, tenant_id: str) -> str:
    while True:  # 32^20: a clash is astronomically rare, but checked
        state = STATE_PREFIX + "".join(secrets.choice(STATE_ALPHABET) for _ in range(STATE_RANDOM))
        taken = session.scalar(
            select(WecomContactWay.id).where(
                WecomContactWay.tenant_id == tenant_id, WecomContactWay.state == state
            )
        )
        if taken is None:
            return state


def _way_of_code(session: Session, code: ScanCode) -> WecomContactWay | None:
    return session.scalar(
        select(WecomContactWay).where(
            WecomContactWay.tenant_id == code.tenant_id, WecomContactWay.code_id == code.id
        )
    )


def _own_way(session: Session, tenant_id: str, guide_id: str) -> WecomContactWay | None:
    return session.scalar(
        select(WecomContactWay).where(
            WecomContactWay.tenant_id == tenant_id,
            WecomContactWay.guide_id == guide_id,
            WecomContactWay.code_id.is_(None),
        )
    )


def _ensure(
    session: Session, *, tenant_id: str, code: ScanCode | None = None, guide_id: str | None = None
) -> WecomContactWay:
    """The way of `code` (or the guide's own way), made due now if it is new."""
    find = (
        (lambda: _way_of_code(session, code))
        if code
        else (lambda: _own_way(session, tenant_id, guide_id or ""))
    )
    way = find()
    if way is not None:
        return way
    way = WecomContactWay(
        tenant_id=tenant_id,
        state=new_state(session, tenant_id),
        code_id=code.id if code else None,
        guide_id=(code.guide_id if code else guide_id),
        kind="multi" if code is not None and code.kind == "store" else "single",
        userids=[],
        sync_due_at=utcnow(),
    )
    try:
        with session.begin_nested():  # two first scans at once: one way
            session.add(way)
            session.flush()
    except IntegrityError:
        found = find()
        if found is None:
            raise
        return found
    return way


def _mark_due(way: WecomContactWay, now: datetime) -> None:
    way.sync_due_at, way.sync_attempts = now, 0


def wake(session: Session, tenant_id: str, *, delay: float | None = None) -> Job:
    """The tenant's sync job due now (or in `delay` s)."""
    return jobs.ensure_due(session, tenant_id=tenant_id, kind=KIND, delay=delay)


# --- what the way should name now -----------------------------------------------------


def code_wants_way(code: ScanCode, now: datetime) -> bool:
    """A switched-off or expired code has no way (a not-yet-valid one has: its posters
    are printed ahead, and the scan itself refuses the early customer)."""
    if code.kind == "lbs" or not code.active:
        return False
    return code.valid_until is None or code.valid_until > now


def wanted(session: Session, way: WecomContactWay, now: datetime) -> tuple[list[str], str | None]:
    """(WeCom user ids the way should name now, a problem for HQ when it names nobody)."""
    if way.code_id is None:
        return _single(session, way.guide_id)
    code = session.get(ScanCode, way.code_id)
    if code is None or not code_wants_way(code, now):
        return [], None
    if code.kind == "guide":
        return _single(session, code.guide_id)
    return _multi(session, way, code, now)


def _single(session: Session, guide_id: str | None) -> tuple[list[str], str | None]:
    guide = session.get(Staff, guide_id) if guide_id else None
    if guide is None or guide.state != "active":
        return [], None
    if not guide.wecom_userid:
        return [], f"{guide.name} has no WeCom user id yet (set wecom_userid on the staff)."
    return [guide.wecom_userid], None


def _multi(
    session: Session, way: WecomContactWay, code: ScanCode, now: datetime
) -> tuple[list[str], str | None]:
    rule = session.scalar(
        select(WecomWayRule).where(
            WecomWayRule.tenant_id == code.tenant_id, WecomWayRule.code_id == code.id
        )
    )
    guides = _store_guides(session, code, rule)
    if not guides:
        return [], "No active guide of the store has a WeCom user id yet."
    zone = ZoneInfo(session.get_one(Tenant, code.tenant_id).timezone)
    local = now.astimezone(zone)
    received = _received_today(session, way, local) if rule and rule.daily_cap else {}
    on = [
        g
        for g in guides
        if not _off_duty(g, local)
        and not (rule and rule.daily_cap and received.get(g.id, 0) >= rule.daily_cap)
    ]
    if not on and rule and rule.backup_guide_id:
        backup = session.get(Staff, rule.backup_guide_id)
        if backup is not None and backup.state == "active" and backup.wecom_userid:
            on = [backup]
    # Nobody on and no backup: everyone stays named (a cap broken beats a code adding nobody).
    return [g.wecom_userid or "" for g in (on or guides)][:MAX_USERS], None


def _store_guides(session: Session, code: ScanCode, rule: WecomWayRule | None) -> list[Staff]:
    stmt = select(Staff).where(
        Staff.tenant_id == code.tenant_id,
        Staff.role == "guide",
        Staff.state == "active",
        Staff.wecom_userid.is_not(None),
    )
    if rule and rule.guide_ids:
        found = {g.id: g for g in session.scalars(stmt.where(Staff.id.in_(rule.guide_ids)))}
        return [found[i] for i in rule.guide_ids if i in found]
    return list(session.scalars(stmt.where(Staff.store_id == code.store_id).order_by(Staff.id)))


def _received_today(session: Session, way: WecomContactWay, local: datetime) -> dict[str, int]:
    """Customers each guide received through this way since the tenant's midnight."""
    midnight = datetime.combine(local.date(), time(0), local.tzinfo)
    rows = session.execute(
        select(WecomContact.guide_id, func.count())
        .where(
            WecomContact.tenant_id == way.tenant_id,
            WecomContact.contact_way_id == way.id,
            WecomContact.added_at >= midnight,
        )
        .group_by(WecomContact.guide_id)
    )
    return {guide_id: int(n) for guide_id, n in rows if guide_id}


def _off_duty(guide: Staff, local: datetime) -> bool:
    """Off when their store is closed now by its opening hours (unknown hours: on)."""
    store: Store | None = guide.store
    return store is not None and hours.open_at(store.opening_hours, local) is False


# --- the sync --------------------------------------------------------------------------


def sync_way(session: Session, client: WecomClient, way: WecomContactWay, now: datetime) -> str:
    """Bring one way in step with WeCom: 'added', 'updated', 'deleted', 'unchanged',
    'refused' or 'retry'."""
    users, problem = wanted(session, way, now)
    try:
        outcome = _apply(session, client, way, users, now)
    except WecomUnavailable as error:
        way.sync_attempts += 1
        wait = min(settings_of(session).event_retry_s * 2 ** (way.sync_attempts - 1), MAX_RETRY_S)
        way.sync_due_at = now + timedelta(seconds=wait)
        way.last_error, way.last_errcode = f"{error.message} (retrying)", error.errcode
        return "retry"
    except WecomRefused as error:
        way.sync_due_at, way.sync_attempts = None, 0
        way.last_errcode = error.errcode
        meaning = REFUSALS.get(error.errcode or 0)
        named = f" It names: {', '.join(users)}." if users else ""
        way.last_error = (
            f"WeCom refused this contact way: {meaning}.{named}" if meaning else error.message
        )
        log.warning("wecom contact way refused", extra={"way": way.id, "errcode": error.errcode})
        return "refused"
    way.sync_due_at, way.sync_attempts, way.synced_at = None, 0, now
    way.last_error, way.last_errcode = problem, None
    return outcome


def _apply(
    session: Session, client: WecomClient, way: WecomContactWay, users: list[str], now: datetime
) -> str:
    live = way.config_id is not None and way.retired_at is None
    if not users:
        if live:
            try:
                client.call(
                    "del_contact_way",
                    "post",
                    "externalcontact/del_contact_way",
                    data={"config_id": way.config_id},
                )
            except WecomRefused as error:
                if error.errcode != 41044:  # already gone in WeCom (deleted in the console)
                    raise
        way.retired_at = way.retired_at or now
        way.qr_code, way.userids = None, []
        return "deleted" if live else "unchanged"
    if live and users == way.userids:
        return "unchanged"
    if live:
        try:
            client.call(
                "update_contact_way",
                "post",
                "externalcontact/update_contact_way",
                data={"config_id": way.config_id, "user": users, "remark": _remark(session, way)},
            )
            way.userids = users
            return "updated"
        except WecomRefused as error:
            if error.errcode != 41044:
                raise  # deleted in the console meanwhile: made again below
    made = client.call(
        "add_contact_way",
        "post",
        "externalcontact/add_contact_way",
        data={
            "type": 1 if way.kind == "single" else 2,
            "scene": 2,  # a QR code
            "state": way.state,
            "skip_verify": True,
            "remark": _remark(session, way),
            "user": users,
        },
    )
    way.config_id, way.qr_code = made["config_id"], made.get("qr_code")
    way.userids, way.retired_at = users, None
    return "added"


def _remark(session: Session, way: WecomContactWay) -> str:
    """What the guide sees in WeCom as the way's note (30 characters at most)."""
    if way.code_id:
        code = session.get_one(ScanCode, way.code_id)
        return (code.name or f"guideapp {code.code}")[:30]
    return "guideapp 导购"[:30]


@jobs.kind(KIND, unit="ways")
def run(ctx: jobs.JobContext) -> dict:
    counts: dict[str, int] = {}
    seen: set[str] = set()
    while True:
        with ctx.reading() as session:
            due = session.scalars(
                select(WecomContactWay.id)
                .where(
                    WecomContactWay.tenant_id == ctx.tenant_id,
                    WecomContactWay.sync_due_at <= utcnow(),
                )
                .order_by(WecomContactWay.sync_due_at, WecomContactWay.id)
                .limit(BATCH)
            ).all()
        due = [way_id for way_id in due if way_id not in seen]
        if not due:
            break
        for way_id in due:
            seen.add(way_id)
            with ctx.unit() as session:
                outcome = _sync_due(session, way_id)
                ctx.progress(ctx.done + 1)
            counts[outcome] = counts.get(outcome, 0) + 1
    with ctx.unit() as session:  # ways waiting for a retry: a run when the first is due
        first = session.scalar(
            select(func.min(WecomContactWay.sync_due_at)).where(
                WecomContactWay.tenant_id == ctx.tenant_id
            )
        )
        if first is not None:
            wake(session, ctx.tenant_id, delay=max((first - utcnow()).total_seconds(), 1.0))
    return counts


def _sync_due(session: Session, way_id: str) -> str:
    way = session.get(WecomContactWay, way_id, with_for_update=True, populate_existing=True)
    now = utcnow()
    if way is None or way.sync_due_at is None or way.sync_due_at > now:
        return "skipped"  # another run did it meanwhile
    try:
        client = contact_client(session, way.tenant_id)
    except WecomNotConfigured as error:
        way.sync_due_at, way.last_error = None, error.message
        return "refused"
    return sync_way(session, client, way, now)


# --- reactions (wired in guideapp/wiring.py) ------------------------------------------


def on_code_changed(session: Session, *, code: ScanCode) -> None:
    """scans.code_changed: the code's way is due (made when the code wants one)."""
    if code.kind == "lbs" or not ready(session, code.tenant_id):
        return
    now = utcnow()
    way = _way_of_code(session, code)
    if way is None:
        if not code_wants_way(code, now):
            return  # a switched-off code never needed a way
        _ensure(session, tenant_id=code.tenant_id, code=code)
    else:
        way.guide_id = code.guide_id
        _mark_due(way, now)
    wake(session, code.tenant_id)


def on_scan_resolved(
    session: Session, *, code: ScanCode, resolution: str, store_id, guide_id, **_
) -> dict[str, Any]:
    """scans.scan_resolved: the WeCom QR to show, from what is stored (no WeCom call); a
    way not made yet is made due and the answer goes without it."""
    if not ready(session, code.tenant_id):
        return {}
    way = None
    if code.kind != "lbs" and resolution in ("guide", "store"):
        way = _way_of_code(session, code)
        if way is None and code_wants_way(code, utcnow()):
            way = _ensure(session, tenant_id=code.tenant_id, code=code)
            wake(session, code.tenant_id)
        if way is not None and way.retired_at is not None:
            way = None  # it names nobody now: the routed guide's own way instead
    if way is None and guide_id:
        way = _own_way(session, code.tenant_id, guide_id)
        if way is None:
            way = _ensure(session, tenant_id=code.tenant_id, guide_id=guide_id)
            wake(session, code.tenant_id)
    live = way is not None and way.retired_at is None and way.config_id
    return {"wecom_qr_code": way.qr_code if live and way else None}


def on_scheduler_tick(session: Session, *, tenant_id: str, since, now: datetime, **_) -> None:
    """tasks.scheduler_ticked: multi-user ways whose guides came or went (caps, opening
    hours, a new day), ways of codes that expired or guides that left, and ways never made
    for want of a WeCom user id (set since on the staff), are due."""
    if not ready(session, tenant_id):
        return
    live = and_(WecomContactWay.config_id.is_not(None), WecomContactWay.retired_at.is_(None))
    # Our own problem (no user id), not WeCom's refusal: that waits for a change or a sync.
    unmade = and_(
        WecomContactWay.config_id.is_(None),
        WecomContactWay.last_error.is_not(None),
        WecomContactWay.last_errcode.is_(None),
    )
    candidates = session.scalars(
        select(WecomContactWay)
        .outerjoin(ScanCode, ScanCode.id == WecomContactWay.code_id)
        .outerjoin(Staff, Staff.id == WecomContactWay.guide_id)
        .where(
            WecomContactWay.tenant_id == tenant_id,
            WecomContactWay.sync_due_at.is_(None),
            or_(
                and_(
                    live,
                    or_(
                        WecomContactWay.kind == "multi",
                        ScanCode.valid_until <= now,
                        Staff.state != "active",
                    ),
                ),
                unmade,
            ),
        )
    ).all()
    due = 0
    for way in candidates:
        users, _problem = wanted(session, way, now)
        if users != way.userids:
            _mark_due(way, now)
            due += 1
    if due:
        wake(session, tenant_id)


def recheck_after_add(session: Session, *, contact_way_id: str | None) -> None:
    """For the add_external_contact handler, after it recorded the WecomContact: a guide
    who just reached the way's daily cap is dropped now, not at the next tick."""
    way = session.get(WecomContactWay, contact_way_id) if contact_way_id else None
    if way is None or way.kind != "multi" or way.retired_at is not None:
        return
    if way.sync_due_at is not None:
        return  # a sync is coming anyway, and it recomputes the list
    users, _problem = wanted(session, way, utcnow())
    if users != way.userids:
        _mark_due(way, utcnow())
        wake(session, way.tenant_id)


def on_staff_signed_off(session: Session, *, staff, successor=None, by_staff_id=None) -> None:
    """org.staff_signed_off: the ways naming the guide who left drop them now."""
    if not ready(session, staff.tenant_id) or not staff.wecom_userid:
        return
    ways = session.scalars(
        select(WecomContactWay).where(
            WecomContactWay.tenant_id == staff.tenant_id, WecomContactWay.retired_at.is_(None)
        )
    ).all()
    now, due = utcnow(), False
    for way in ways:
        if staff.wecom_userid in (way.userids or []) or way.guide_id == staff.id:
            _mark_due(way, now)
            due = True
    if due:
        wake(session, staff.tenant_id)


# --- HQ, managers and guides: read, rules, sync all ---------------------------------


def list_ways(session: Session, *, actor, code_id=None, cursor=None, limit=50):
    stmt = policy.scoped_select(actor, WecomContactWay)
    if code_id:
        stmt = stmt.where(WecomContactWay.code_id == code_id)
    keys = [WecomContactWay.created_at, WecomContactWay.id]
    return paginate(session, stmt, keys, cursor=cursor, limit=limit, descending=True)


def sync_all(session: Session, *, actor) -> Job:
    """HQ: every guide and store code gets its way, and every way is synced again."""
    policy.require(actor, "configure_wecom")
    contact_client(session, actor.tenant_id)  # 409 now when WeCom is not configured
    now = utcnow()
    missing = session.scalars(
        select(ScanCode).where(
            ScanCode.tenant_id == actor.tenant_id,
            ScanCode.kind.in_(("guide", "store")),
            ScanCode.active.is_(True),
            ~select(WecomContactWay.id).where(WecomContactWay.code_id == ScanCode.id).exists(),
        )
    ).all()
    for code in missing:
        if code_wants_way(code, now):
            _ensure(session, tenant_id=actor.tenant_id, code=code)
    session.execute(
        update(WecomContactWay)
        .where(WecomContactWay.tenant_id == actor.tenant_id)
        .values(sync_due_at=now, sync_attempts=0)
        .execution_options(synchronize_session=False)
    )
    return wake(session, actor.tenant_id)


def get_rule(session: Session, *, actor, code_id: str) -> dict:
    code = policy.get_visible(session, actor, ScanCode, code_id, label="Code")
    return _present_rule(code, _rule_row(session, code))


def put_rule(session: Session, *, actor, code_id: str, data: dict) -> dict:
    """A store code's rule: its guides (of that store), daily cap, backup guide."""
    code = policy.get_writable(session, actor, ScanCode, code_id, "update")
    if code.kind != "store":
        raise InvalidInput(
            "Only a store code's contact way names several guides.",
            errors={"code_id": [f"This is a {code.kind} code."]},
        )
    active_guides = [Staff.role == "guide", Staff.state == "active"]
    if "guide_ids" in data:
        data["guide_ids"] = resolve_ids(
            session,
            actor,
            Staff,
            data["guide_ids"],
            field="guide_ids",
            what="active guide of the code's store",
            where=[*active_guides, Staff.store_id == code.store_id],
            load=False,
        )
    if data.get("backup_guide_id"):
        resolve_id(
            session,
            actor,
            Staff,
            data["backup_guide_id"],
            field="backup_guide_id",
            what="active guide",
            where=active_guides,
        )
    rule = _rule_row(session, code)
    if rule is None:
        rule = WecomWayRule(tenant_id=code.tenant_id, code_id=code.id, guide_ids=[])
        session.add(rule)
    for name in ("guide_ids", "daily_cap", "backup_guide_id"):
        if name in data:
            setattr(rule, name, data[name])
    rule.updated_by, rule.updated_at = actor.staff_id, utcnow()
    session.flush()
    on_code_changed(session, code=code)
    return _present_rule(code, rule)


def _rule_row(session: Session, code: ScanCode) -> WecomWayRule | None:
    return session.scalar(
        select(WecomWayRule).where(
            WecomWayRule.tenant_id == code.tenant_id, WecomWayRule.code_id == code.id
        )
    )


def _present_rule(code: ScanCode, rule: WecomWayRule | None) -> dict:
    return {
        "code_id": code.id,
        "guide_ids": list(rule.guide_ids) if rule else [],
        "daily_cap": rule.daily_cap if rule else None,
        "backup_guide_id": rule.backup_guide_id if rule else None,
        "updated_at": rule.updated_at if rule else None,
    }
