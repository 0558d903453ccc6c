"""Bulk import of members and orders from CSV / Excel, with a row-by-row error report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Callable
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from guideapp.db import utcnow
from guideapp.errors import InvalidInput
from guideapp.members import import_members, import_orders
from guideapp.members import import_rows as cells
from guideapp.members.lifecycle import rules_for
from guideapp.org.models import Staff, Store, Tenant

IMPORT_KINDS = ("members", "orders")
# fill: an import only fills what a member lacks (the default); overwrite: a filled cell
# replaces the member's value. Empty cells never blank anything; phone and unionid are
# identities and only ever learned, never replaced (merge members for that).
MODES = ("fill", "overwrite")
BATCH = 5000  # rows resolved and written per set-based round trip


@dataclass
class Spec:
    """The columns of one kind of file: field -> (accepted names, parser); the first name
    is the one shown to people. `required` lists groups of which one column must be there
    and filled in; `finish` checks fields against each other; `keys` find in-file repeats."""

    columns: dict[str, tuple[tuple[str, ...], Callable]]
    required: tuple[tuple[str, ...], ...]
    finish: Callable
    keys: Callable
    apply: Callable


@dataclass
class Run:
    """What one import knows (tenant, guides, stores) and what it found (counts, errors)."""

    tenant_id: str
    tz: tzinfo
    now: datetime
    lock_days: int
    rules: dict
    guides: dict
    stores: dict
    dry_run: bool
    by_staff_id: str | None
    mode: str = "fill"
    columns: dict = field(default_factory=dict)
    rows: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list = field(default_factory=list)
    failed: set = field(default_factory=set)
    notes: list = field(default_factory=list)  # why a row changed nothing, or kept a value
    claimed: dict = field(default_factory=dict)  # member id -> the first row that changed it
    new_members: dict = field(default_factory=dict)  # ('phone'|'unionid', value) -> member

    def error(self, row: int, name: str, message: str) -> None:
        self.errors.append({"row": row, "field": name, "message": message})
        self.failed.add(row)

    def note(self, row: int, name: str | None, message: str) -> None:
        self.notes.append({"row": row, "field": name, "message": message})

    def same(self, row: int, why: list[tuple[str | None, str]]) -> None:
        """A row that changes nothing, and why (one note per reason)."""
        self.unchanged += 1
        for name, message in why:
            self.note(row, name, message)

    def report(self, kind: str) -> dict:
        """imported + updated + unchanged + failed == rows: every row is accounted for."""
        return {
            "kind": kind,
            "dry_run": self.dry_run,
            "mode": self.mode,
            "rows": self.rows,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": len(self.failed),
            "errors": sorted(self.errors, key=lambda e: e["row"]),
            "notes": sorted(self.notes, key=lambda e: e["row"]),
        }


def _member_finish(record: dict, _run: Run) -> list[tuple[str, str]]:
    guide, store_id = record.get("guide_phone"), record.get("store_code")
    if guide and store_id and guide["store_id"] != store_id:
        return [
            (
                "store_code",
                "The guide works at another store; leave 门店编码 empty or give the guide's store.",
            )
        ]
    return []


def _order_finish(record: dict, _run: Run) -> list[tuple[str, str]]:
    amount, amount_fen = record.get("amount"), record.get("amount_fen")
    if amount is not None and amount_fen is not None and amount != amount_fen:
        return [("amount_fen", f"Says {amount_fen} fen but 金额/amount says {amount} fen.")]
    record["amount_fen"] = amount if amount is not None else amount_fen
    refund = record.get("refund_amount") or 0
    if record["amount_fen"] is not None and refund > record["amount_fen"]:
        return [("refund_amount", "The refund is larger than the order amount.")]
    record["refund_amount"] = refund
    return []


MEMBERS = Spec(
    columns={
        "phone": (("手机号", "phone", "mobile", "手机", "手机号码", "会员手机号"), cells.phone),
        "name": (("姓名", "name", "会员姓名", "名字"), cells.short_text(60)),
        "gender": (("性别", "gender", "sex"), cells.gender),
        "birthday": (("生日", "birthday", "出生日期"), cells.birthday),
        "unionid": (("unionid", "union_id", "微信unionid"), cells.unionid),
        "guide_phone": (("导购手机号", "guide_phone", "导购手机", "专属导购手机号"), cells.guide),
        "store_code": (("门店编码", "store_code", "门店代码", "门店编号"), cells.store),
        "tier": (("会员等级", "tier", "等级"), cells.tier),
        "points": (("积分", "points", "积分余额"), cells.whole_number),
        "source_channel": (("来源渠道", "source_channel", "来源", "渠道"), cells.channel),
        "joined_at": (("入会时间", "joined_at", "注册时间", "入会日期"), cells.moment),
    },
    required=(("phone", "unionid"),),
    finish=_member_finish,
    keys=lambda r: [("phone", r.get("phone")), ("unionid", r.get("unionid"))],
    apply=import_members.apply,
)
ORDERS = Spec(
    columns={
        "channel": (("渠道", "channel", "订单渠道", "销售渠道"), cells.channel),
        "order_no": (("订单号", "order_no", "订单编号"), cells.short_text(64)),
        "amount": (("金额", "amount", "金额(元)", "订单金额", "实付金额", "支付金额"), cells.yuan),
        "amount_fen": (("金额(分)", "amount_fen", "实付金额(分)"), cells.fen),
        "ordered_at": (("下单时间", "ordered_at", "支付时间", "订单时间"), cells.moment),
        "store_code": (("门店编码", "store_code", "门店代码", "门店编号"), cells.store),
        "phone": (("手机号", "phone", "mobile", "手机", "手机号码", "会员手机号"), cells.phone),
        "unionid": (("unionid", "union_id", "微信unionid"), cells.unionid),
        "name": (("姓名", "buyer_name", "name", "会员姓名", "买家姓名"), cells.short_text(60)),
        "refund_amount": (("退款金额", "refund_amount", "退款金额(元)"), cells.yuan),
    },
    required=(
        ("channel",),
        ("order_no",),
        ("amount", "amount_fen"),
        ("ordered_at",),
        ("phone", "unionid"),
    ),
    finish=_order_finish,
    keys=lambda r: [
        (
            "order_no",
            (r.get("channel"), r.get("order_no"))
            if r.get("channel") and r.get("order_no")
            else None,
        )
    ],
    apply=import_orders.apply,
)
SPECS = {"members": MEMBERS, "orders": ORDERS}


def run_import(
    session: Session,
    *,
    tenant_id: str,
    kind: str,
    filename: str,
    content: bytes,
    dry_run: bool,
    by_staff_id: str | None = None,
    mode: str = "fill",
    limits: cells.Limits | None = None,
) -> dict:
    """Parse `content` (CSV or .xlsx by file name), validate each row, apply the good ones.

    Returns {"kind", "dry_run", "mode", "rows", "imported", "updated", "unchanged",
    "failed", "errors": [{"row": 3, "field": "phone", "message": "..."}], "notes": [...]}:
    every row is counted once, a failed row has errors, an unchanged row a note saying why.
    A dry run writes nothing. A file over `limits` is a 413.
    """
    spec = SPECS.get(kind)
    if spec is None:
        message = f"Unknown import kind '{kind}'; use one of: {', '.join(IMPORT_KINDS)}."
        raise InvalidInput(message, errors={"kind": [message]})
    if mode not in MODES or (kind == "orders" and mode != "fill"):
        message = (
            "Orders are facts: an orders import records them, with no mode."
            if mode in MODES
            else f"Unknown mode '{mode}'; use one of: {', '.join(MODES)}."
        )
        raise InvalidInput(message, errors={"mode": [message]})
    header, rows = cells.read_table(filename, content, limits or cells.Limits())
    run = _start(session, tenant_id, dry_run=dry_run, by_staff_id=by_staff_id, mode=mode)
    run.columns = map_columns(spec, header)
    records = check_rows(spec, rows, run)
    if not run.rows:
        message = "The file has a header but no rows below it."
        raise InvalidInput(message, errors={"file": [message]})
    for start in range(0, len(records), BATCH):
        spec.apply(session, run, records[start : start + BATCH])
    if not dry_run:
        session.expire_all()  # bulk UPDATEs bypass objects already loaded in the session
    return run.report(kind)


def _start(session: Session, tenant_id: str, **options) -> Run:
    tenant = session.get_one(Tenant, tenant_id)
    guides = session.execute(
        select(Staff.phone, Staff.id, Staff.store_id).where(
            Staff.tenant_id == tenant_id, Staff.role == "guide", Staff.state == "active"
        )
    )
    stores = session.execute(select(Store.code, Store.id).where(Store.tenant_id == tenant_id))
    return Run(
        tenant_id=tenant_id,
        tz=ZoneInfo(tenant.timezone or "Asia/Shanghai"),
        now=utcnow(),
        lock_days=tenant.binding_lock_days,
        rules=rules_for(session, tenant_id),
        guides={p: {"id": i, "store_id": s} for p, i, s in guides},
        stores=dict(stores.all()),
        **options,
    )


def label(spec: Spec, name: str) -> str:
    first = spec.columns[name][0][0]
    return name if first == name else f"{first}/{name}"


def map_columns(spec: Spec, header: list) -> dict[str, int]:
    """Field -> column index; English and Chinese column names, any order, extras ignored."""
    aliases = {
        cells.header_key(alias): name
        for name, (names, _) in spec.columns.items()
        for alias in (*names, name)
    }
    found: dict[str, int] = {}
    for index, title in enumerate(header):
        name = aliases.get(cells.header_key(title))
        if name is None:
            continue
        if name in found:
            message = (
                f"Columns '{header[found[name]]}' and '{title}' both mean "
                f"{label(spec, name)}; keep one of them."
            )
            raise InvalidInput(message, errors={"file": [message]})
        found[name] = index
    missing = [
        " or ".join(label(spec, n) for n in group)
        for group in spec.required
        if not any(n in found for n in group)
    ]
    if missing:
        message = f"Missing required columns: {'; '.join(missing)}."
        raise InvalidInput(message, errors={"file": [message]})
    return found


def check_rows(spec: Spec, rows, run: Run) -> list[dict]:
    """Every row parsed and checked; the good ones returned, the bad ones reported."""
    records: list[dict] = []
    seen: dict = {}
    for number, raw in rows:
        run.rows += 1
        record, bad = _parse_row(spec, number, raw, run)
        bad |= _repeats(spec, record, seen, run)
        if not bad:
            records.append(record)
    return records


def _parse_row(spec: Spec, number: int, raw, run: Run) -> tuple[dict, set]:
    record: dict[str, Any] = {"row": number}
    bad: set = set()
    for name, index in run.columns.items():
        cell = raw[index] if index < len(raw) else None
        if cell is None or cell == "":
            record[name] = None  # every parser reads an empty cell as "not given"
            continue
        try:
            record[name] = spec.columns[name][1](cell, run)
        except cells.CellError as exc:
            run.error(number, name, str(exc))
            bad.add(name)
    for group in spec.required:
        if not bad.intersection(group) and all(record.get(n) is None for n in group):
            run.error(
                number,
                group[0],
                f"Empty; every row needs {' or '.join(label(spec, n) for n in group)}.",
            )
            bad.add(group[0])
    for name, message in [] if bad else spec.finish(record, run):
        run.error(number, name, message)
        bad.add(name)
    return record, bad


def _repeats(spec: Spec, record: dict, seen: dict, run: Run) -> set:
    """The later of two rows about the same person or order is reported, bad or not."""
    bad = set()
    for name, key in spec.keys(record):
        if key is None:
            continue
        if (name, key) in seen:
            run.error(
                record["row"],
                name,
                f"Duplicate of row {seen[name, key]} (same {name}); "
                "each person or order goes in one row.",
            )
            bad.add(name)
        else:
            seen[name, key] = record["row"]
    return bad
