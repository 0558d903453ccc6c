"""Members import, set-based: a batch resolved in two SELECTs and written in a few statements."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import ARRAY, any_, bindparam, insert, select, update
from sqlalchemy.orm import Session

from guideapp import db
from guideapp.db import new_id
from guideapp.members.models import TIERS, Binding, Member, PointsEntry
from guideapp.members.signals import members_recruited
from guideapp.changelog import log_changes, staff_scope, store_scope, tenant_scope

# What an import reads of an existing member, and writes back whole (one executemany shape).
MEMBER_COLUMNS = (
    Member.id,
    Member.phone,
    Member.phone_tail,
    Member.unionid,
    Member.name,
    Member.gender,
    Member.birthday,
    Member.birthday_mmdd,
    Member.tier,
    Member.tier_since,
    Member.stage,
    Member.source_channel,
    Member.joined_at,
    Member.guide_id,
    Member.store_id,
    Member.bound_at,
    Member.binding_locked_until,
)


def scopes(tenant_id: str, member: dict) -> set[str]:
    """identity.member_scopes for a member held as a dict."""
    found = set()
    if member["guide_id"]:
        found.add(staff_scope(member["guide_id"]))
    if member["store_id"]:
        found.add(store_scope(member["store_id"]))
    return found or {tenant_scope(tenant_id)}


def one_of(session: Session, column, values):
    """`column IN (...)`; on PostgreSQL `= ANY(array)`: one parameter instead of 5,000 makes
    a short statement that psycopg parses once, not a 100 kB one it re-parses per batch."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def existing_members(session: Session, run, column, values) -> dict[str, dict]:
    """The tenant's members whose `column` is one of `values`, keyed by that value."""
    values = {v for v in values if v}
    if not values:
        return {}
    stmt = select(*MEMBER_COLUMNS).where(
        Member.tenant_id == run.tenant_id, one_of(session, column, values)
    )
    if not run.dry_run:
        stmt = stmt.with_for_update()  # the lock check and the write see the same binding
    return {getattr(row, column.key): row._asdict() for row in session.execute(stmt)}


def new_member(run, *, phone=None, unionid=None, **values) -> dict:
    """A complete members row (every column, so a batch inserts as one executemany)."""
    member = {
        "id": new_id(),
        "tenant_id": run.tenant_id,
        "phone": phone,
        "phone_tail": phone[-4:] if phone else None,
        "unionid": unionid,
        "name": "",
        "gender": "unknown",
        "birthday": None,
        "birthday_mmdd": None,
        "tier": "normal",
        "tier_since": None,  # a new member comes with their tier: no change to react to
        "stage": "prospect",
        "source_channel": "import",
        "joined_at": run.now,
        "guide_id": None,
        "store_id": None,
        "bound_at": None,
        "binding_locked_until": None,
        "state": "active",
        "created_at": run.now,
        "updated_at": run.now,
    }  # last_order_at, last_contact_at, merged_into_id: NULL
    member.update({k: v for k, v in values.items() if v is not None})
    if member["birthday"]:
        member["birthday_mmdd"] = member["birthday"].strftime("%m%d")
    return member


@dataclass
class Plan:
    creates: list = field(default_factory=list)
    updates: list = field(default_factory=list)
    rebound: list = field(default_factory=list)  # existing members whose open binding ends
    bindings: list = field(default_factory=list)
    points: list = field(default_factory=list)
    log: list = field(default_factory=list)  # (member id, scope): old and new scopes

    def touch(self, run, member: dict, old: dict | None = None) -> None:
        moved = scopes(run.tenant_id, old) if old else set()
        self.log += [(member["id"], s) for s in scopes(run.tenant_id, member) | moved]


def apply(session: Session, run, batch: list[dict]) -> None:
    by_phone = existing_members(session, run, Member.phone, (r.get("phone") for r in batch))
    by_unionid = existing_members(session, run, Member.unionid, (r.get("unionid") for r in batch))
    # members an earlier batch already changed (in-file repeats by another key)
    matched = {("member", m["id"]) for m in (*by_phone.values(), *by_unionid.values())}
    earlier = run.seen.earlier(session, matched)
    run.claimed = dict(earlier)
    plan = Plan()
    for record in batch:
        member = _match(run, record, by_phone, by_unionid)
        if member is None:
            _plan_new(run, record, plan)
        elif member is not False:
            _plan_update(run, record, member, plan)
        # else: reported as failed by _match
    run.imported += len(plan.creates)
    run.updated += len(plan.updates)
    run.seen.remember(session, {k: r for k, r in run.claimed.items() if k not in earlier})
    if not run.dry_run:
        _write(session, run, plan)


def _match(run, record: dict, by_phone: dict, by_unionid: dict):
    """The existing member a row is about, None for a new one, False when it cannot apply."""
    phone_match = by_phone.get(record.get("phone"))
    unionid_match = by_unionid.get(record.get("unionid"))
    if phone_match and unionid_match and phone_match["id"] != unionid_match["id"]:
        run.error(
            record["row"],
            "unionid",
            "This unionid belongs to another member than this phone; merge the two members first.",
        )
        return False
    member = phone_match or unionid_match
    if member is None:
        return None
    first = run.claimed.setdefault(("member", member["id"]), record["row"])
    if first != record["row"]:
        run.error(
            record["row"],
            "phone" if phone_match else "unionid",
            f"Same member as row {first} (matched by phone or unionid); merge the rows.",
        )
        return False
    return member


def _plan_new(run, record: dict, plan: Plan) -> None:
    member = new_member(
        run,
        phone=record.get("phone"),
        unionid=record.get("unionid"),
        name=record.get("name"),
        gender=record.get("gender"),
        birthday=record.get("birthday"),
        tier=record.get("tier"),
        source_channel=record.get("source_channel"),
        joined_at=record.get("joined_at"),
        store_id=record.get("store_code"),
    )
    if record.get("guide_phone"):
        _bind(run, record, member, plan, existing=False)
    _stage(member)
    if record.get("points"):
        plan.points.append(
            {
                "id": new_id(),
                "tenant_id": run.tenant_id,
                "member_id": member["id"],
                "kind": "adjust",
                "points": record["points"],
                "reason": "opening balance (import)",
                "created_at": run.now,
            }
        )
    plan.creates.append(member)
    plan.touch(run, member)


def _plan_update(run, record: dict, member: dict, plan: Plan) -> None:
    """An existing member: updated, or unchanged with the reasons noted."""
    new = dict(member)
    kept = _fill(run, record, new)
    if new["tier"] != member["tier"]:
        new["tier_since"] = run.now
    if record.get("guide_phone"):
        if not _bind(run, record, new, plan, existing=True):
            return  # failed: reported by _bind
    elif record.get("store_code") and record["store_code"] != new["store_id"]:
        if not new["guide_id"] and (not new["store_id"] or run.mode == "overwrite"):
            new["store_id"] = record["store_code"]  # into the store's pool
        else:
            kept.append(("store_code", _kept_store(run, new)))
    if record.get("points"):
        kept.append(("points", POINTS_NOTE))
    _stage(new)
    if new != member:
        new["updated_at"] = run.now
        plan.updates.append(new)
        plan.touch(run, new, old=member)
        for name, message in kept:
            run.note(record["row"], name, message)
    else:  # a replay, or only values the mode keeps
        run.same(record["row"], kept or [(None, NOTHING_NEW)])


NOTHING_NEW = "Nothing new: the member already has every value in this row."
POINTS_NOTE = (
    "积分 opens the balance of a new member only; this member's balance stays "
    "(adjust it on the member card)."
)
LABELS = {
    "name": "姓名/name",
    "gender": "性别/gender",
    "birthday": "生日/birthday",
    "tier": "会员等级/tier",
    "joined_at": "入会时间/joined_at",
    "source_channel": "来源渠道/source_channel",
    "unionid": "unionid",
    "phone": "手机号/phone",
}
# fill: when the member's value counts as blank (tiers only rise, as in a merge)
BLANK = {
    "name": lambda old, new: not (old or "").strip(),
    "gender": lambda old, new: old == "unknown",
    "birthday": lambda old, new: old is None,
    "tier": lambda old, new: TIERS.index(new) > TIERS.index(old),
    "joined_at": lambda old, new: False,
    "source_channel": lambda old, new: False,
}


def _fill(run, record: dict, member: dict) -> list[tuple[str | None, str]]:
    """Take the row's values into `member` as the run's mode says; an empty cell never blanks
    anything. Returns (field, why) for each value that differs and was kept."""
    kept: list[tuple[str | None, str]] = []
    for name, blank in BLANK.items():
        value = record.get(name)
        if value is None or value == member[name] or (name == "gender" and value == "unknown"):
            continue
        if run.mode == "overwrite" or blank(member[name], value):
            member[name] = value
        else:
            kept.append((name, _kept(run, name, member[name], value)))
    member["birthday_mmdd"] = member["birthday"].strftime("%m%d") if member["birthday"] else None
    for name in ("unionid", "phone"):  # identities: learned, never replaced
        value = record.get(name)
        if value and not member[name]:
            member[name] = value  # free: no member matched it
        elif value and value != member[name]:
            kept.append(
                (
                    name,
                    f"{LABELS[name]} stays {member[name]} (the file says {value}): an import "
                    "never replaces a phone or unionid; merge the two members instead.",
                )
            )
    if member["phone"]:
        member["phone_tail"] = member["phone"][-4:]
    return kept


def _kept(run, name: str, old, new) -> str:
    if name == "tier":
        return (
            f"{LABELS[name]} stays {old} (the file says {new}): with mode=fill tiers only rise;"
            " import with mode=overwrite to set it."
        )
    return (
        f"{LABELS[name]} stays {_shown(run, old)} (the file says {_shown(run, new)}): "
        "mode=fill only fills blanks; import with mode=overwrite to replace it."
    )


def _kept_store(run, member: dict) -> str:
    if member["guide_id"]:
        return (
            "门店编码/store_code not applied: the member is bound to a guide of their store; "
            "give 导购手机号 to rebind, or transfer the member."
        )
    return (
        "门店编码/store_code not applied: the member is already in another store's pool; "
        "import with mode=overwrite to move them."
    )


def _shown(run, value) -> str:
    if isinstance(value, datetime):
        return f"{value.astimezone(run.tz):%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return f"{value:%Y-%m-%d}"
    return f"'{value}'"


def _bind(run, record: dict, member: dict, plan: Plan, *, existing: bool) -> bool:
    """binding.bind for a dict: refused (and reported) while another guide's lock runs."""
    guide = record["guide_phone"]
    if member["guide_id"] == guide["id"]:
        return True
    locked = member["binding_locked_until"]
    if member["guide_id"] and locked and locked > run.now:
        run.error(
            record["row"],
            "guide_phone",
            f"Bound to another guide until {locked.astimezone(run.tz):%Y-%m-%d} "
            "(导购会员锁); a store manager or HQ can transfer the member instead.",
        )
        return False
    if existing:
        plan.rebound.append(member["id"])
    until = run.now + timedelta(days=run.lock_days)
    plan.bindings.append(
        {
            "id": new_id(),
            "tenant_id": run.tenant_id,
            "member_id": member["id"],
            "guide_id": guide["id"],
            "store_id": guide["store_id"],
            "reason": "import",
            "started_at": run.now,
            "locked_until": until,
            "by_staff_id": run.by_staff_id,
        }
    )
    member.update(
        guide_id=guide["id"],
        store_id=guide["store_id"],
        bound_at=run.now,
        binding_locked_until=until,
    )
    return True


def _stage(member: dict) -> None:
    """lifecycle.stage_for without orders: a WeChat contact or a guide makes a fan."""
    if member["stage"] == "prospect" and (member["unionid"] or member["guide_id"]):
        member["stage"] = "fan"


def insert_rows(session: Session, model, rows: list[dict]) -> None:
    """One statement per batch of complete, same-shaped rows: a COPY on PostgreSQL for a
    big batch (db.copy_rows), else one executemany (psycopg pipelines it). The Core table
    skips the ORM's per-row bookkeeping (a third of the time here); the ORM's bulk insert
    would also drop None values, and rows of differing shapes fall apart into one INSERT
    per row."""
    if not rows:
        return
    if len(rows) >= db.COPY_ROWS and session.get_bind().dialect.name == "postgresql":
        db.copy_rows(session, model.__table__, rows)
    else:
        session.execute(insert(model.__table__), rows)


def _write(session: Session, run, plan: Plan) -> None:
    insert_rows(session, Member, plan.creates)
    if plan.rebound:
        session.execute(
            update(Binding)
            .where(Binding.member_id.in_(plan.rebound), Binding.ended_at.is_(None))
            .values(ended_at=run.now),
            execution_options={"synchronize_session": False},
        )
    insert_rows(session, Binding, plan.bindings)
    insert_rows(session, PointsEntry, plan.points)
    if plan.updates:
        # Bulk UPDATE by the table's primary key, which holds tenant_id (guideapp/db.py).
        keyed = [{**row, "tenant_id": run.tenant_id} for row in plan.updates]
        session.execute(update(Member), keyed)
    log_changes(session, tenant_id=run.tenant_id, table="members", rows=plan.log)
    _announce_recruits(session, run, plan)


def _announce_recruits(session: Session, run, plan: Plan) -> None:
    """A member the batch created bound to a guide was recruited, as by POST /members: one
    announcement per batch, dated when the member joined (入会时间/注册时间, else the
    import's start). A rebind is no recruitment (nor is POST /members/<id>/binding)."""
    recruits = [(m["id"], m["guide_id"], m["joined_at"]) for m in plan.creates if m["guide_id"]]
    if recruits:
        members_recruited.send(session, tenant_id=run.tenant_id, recruits=recruits, source="import")
