"""Bulk import of members and orders from CSV / Excel, with a row-by-row error report."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from itertools import islice
from datetime import datetime, tzinfo
from typing import Any, BinaryIO, Callable
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from guideapp import jobs
from guideapp.db import utcnow
from guideapp.jobs.service import find_by_key
from guideapp.storage import SESSION_KEY as STORAGE_KEY
from guideapp.errors import InvalidInput
from guideapp.members import import_members, import_orders
from guideapp.members import import_rows as cells
from guideapp.members.import_members import insert_rows, one_of
from guideapp.members.lifecycle import rules_for
from guideapp.members.models import ImportKey
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


REPORT_LIMIT = 1000  # errors and notes kept in a report (each); the counts say how many


class Seen:
    """Keys met in earlier rows of the file and the first row that had each: in-file
    repeats. In memory for an import inside one transaction (the file is in memory anyway);
    a job keeps them in the database (SeenInDatabase), so memory stays flat and a resumed
    job still knows the rows before its checkpoint."""

    def __init__(self) -> None:
        self.rows: dict = {}

    def earlier(self, session: Session, keys: set) -> dict:
        return {key: self.rows[key] for key in keys if key in self.rows}

    def remember(self, session: Session, found: dict) -> None:
        self.rows.update(found)


class SeenInDatabase(Seen):
    def __init__(self, job_id: str, tenant_id: str) -> None:
        super().__init__()
        self.job_id, self.tenant_id = job_id, tenant_id

    def earlier(self, session: Session, keys: set) -> dict:
        if not keys:
            return {}
        by_text = {_key_text(k): k for k in keys}
        found = session.execute(
            select(ImportKey.key, ImportKey.row).where(
                ImportKey.job_id == self.job_id, one_of(session, ImportKey.key, by_text)
            )
        )
        return {by_text[text]: row for text, row in found}

    def remember(self, session: Session, found: dict) -> None:
        insert_rows(
            session,
            ImportKey,
            [
                {"job_id": self.job_id, "tenant_id": self.tenant_id, "key": _key_text(k), "row": r}
                for k, r in found.items()
            ],
        )

    def forget(self, session: Session) -> None:
        session.execute(delete(ImportKey).where(ImportKey.job_id == self.job_id))


def _key_text(key) -> str:
    return json.dumps(key, ensure_ascii=False, separators=(",", ":"))[:200]


@dataclass
class Run:
    """What one import knows (tenant, guides, stores) and what it found (counts, errors).

    The counts and the kept errors and notes are the job's checkpoint (`state()`); the rest
    is read again when a job resumes."""

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
    seen: Seen = field(default_factory=Seen)
    rows: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    failed_rows: int = 0
    error_count: int = 0
    note_count: int = 0
    errors: list = field(default_factory=list)  # the first REPORT_LIMIT, by row
    notes: list = field(default_factory=list)  # why a row changed nothing, or kept a value
    # this batch's: its failed rows, errors and notes (sorted into the report at its end)
    failed: set = field(default_factory=set)
    batch_errors: list = field(default_factory=list)
    batch_notes: list = field(default_factory=list)
    claimed: dict = field(default_factory=dict)  # ('member', id) -> the first row that changed it
    new_members: dict = field(default_factory=dict)  # ('phone'|'unionid', value) -> member

    def error(self, row: int, name: str, message: str) -> None:
        self.batch_errors.append({"row": row, "field": name, "message": message})
        self.failed.add(row)

    def note(self, row: int, name: str | None, message: str) -> None:
        self.batch_notes.append({"row": row, "field": name, "message": message})

    def same(self, row: int, why: list[tuple[str | None, str]]) -> None:
        """A row that changes nothing, and why (one note per reason)."""
        self.unchanged += 1
        for name, message in why:
            self.note(row, name, message)

    def end_batch(self) -> None:
        """Fold the batch's findings into the report; rows come in order, so the kept
        errors and notes are the file's first ones."""
        self.failed_rows += len(self.failed)
        self.error_count += len(self.batch_errors)
        self.note_count += len(self.batch_notes)
        for kept, found in ((self.errors, self.batch_errors), (self.notes, self.batch_notes)):
            found.sort(key=lambda e: e["row"])
            kept.extend(found[: max(REPORT_LIMIT - len(kept), 0)])
        self.failed, self.batch_errors, self.batch_notes = set(), [], []
        self.claimed, self.new_members = {}, {}

    COUNTS = ("rows", "imported", "updated", "unchanged", "failed_rows", "error_count")

    def state(self) -> dict:
        return {
            **{name: getattr(self, name) for name in (*self.COUNTS, "note_count")},
            "errors": self.errors,
            "notes": self.notes,
        }

    def restore(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def report(self, kind: str) -> dict:
        """imported + updated + unchanged + failed == rows: every row is accounted for."""
        self.end_batch()
        return {
            "kind": kind,
            "dry_run": self.dry_run,
            "mode": self.mode,
            "rows": self.rows,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": self.failed_rows,
            "errors": self.errors,
            "notes": self.notes,
            "errors_total": self.error_count,
            "notes_total": self.note_count,
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
        "joined_at": (
            ("入会时间", "joined_at", "注册时间", "入会日期", "registered_at"),
            cells.moment,
        ),
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
    """Parse `content` (CSV or .xlsx by file name), validate each row, apply the good ones,
    in the caller's transaction (scripts, tests, the in-request benchmark).

    Returns {"kind", "dry_run", "mode", "rows", "imported", "updated", "unchanged",
    "failed", "errors": [{"row": 3, "field": "phone", "message": "..."}], "notes": [...],
    "errors_total", "notes_total"}: every row is counted once, a failed row has errors, an
    unchanged row a note saying why; at most REPORT_LIMIT errors and notes are listed. A dry
    run writes nothing. A file over `limits` is a 413.
    """
    spec = spec_for(kind, mode)
    header, rows = cells.open_rows(filename, io.BytesIO(content), limits or cells.Limits())
    run = start_run(session, tenant_id, dry_run=dry_run, by_staff_id=by_staff_id, mode=mode)
    run.columns = map_columns(spec, header)
    while batch := list(islice(rows, BATCH)):
        import_batch(session, spec, run, batch)
    if not run.rows:
        raise _no_rows()
    if not dry_run:
        session.expire_all()  # bulk UPDATEs bypass objects already loaded in the session
    return run.report(kind)


def import_batch(session: Session, spec: Spec, run: Run, rows: list) -> None:
    """One batch of (row number, cells): checked, applied set-based, folded into the report."""
    records = check_rows(spec, rows, run, session=session)
    spec.apply(session, run, records)
    run.end_batch()


def spec_for(kind: str, mode: str) -> Spec:
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
    return spec


def _no_rows() -> InvalidInput:
    message = "The file has a header but no rows below it."
    return InvalidInput(message, errors={"file": [message]})


def start_run(session: Session, tenant_id: str, **options) -> Run:
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


def check_rows(spec: Spec, rows, run: Run, session: Session | None = None) -> list[dict]:
    """Every row parsed and checked; the good ones returned, the bad ones reported. Rows
    repeating a key of an earlier batch (run.seen) are reported too."""
    parsed = []
    for number, raw in rows:
        run.rows += 1
        parsed.append(_parse_row(spec, number, raw, run))
    seen_before = getattr(run, "seen", None)
    keys = {(name, key) for record, _ in parsed for name, key in spec.keys(record) if key}
    earlier = seen_before.earlier(session, keys) if seen_before and session else {}
    seen = dict(earlier)
    records: list[dict] = []
    for record, bad in parsed:
        bad |= _repeats(spec, record, seen, run)
        if not bad:
            records.append(record)
    if seen_before and session:
        seen_before.remember(session, {k: r for k, r in seen.items() if k not in earlier})
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


# --- imports as jobs (docs/jobs.md) -------------------------------------------------------

JOB_KINDS = {"members": "members.import", "orders": "orders.import"}


def start_import(
    session: Session,
    *,
    tenant_id: str,
    kind: str,
    filename: str,
    file: BinaryIO,
    dry_run: bool,
    mode: str = "fill",
    limits: cells.Limits | None = None,
    started_by: str | None = None,
    store_id: str | None = None,
    idempotency_key: str | None = None,
    enqueue: bool = True,
    batch_rows: int | None = None,
) -> tuple[jobs.Job, bool]:
    """Check what needs no work (kind, mode, file type, encoding, header, a CSV's row count),
    store the file in the upload storage (a worker elsewhere reads it there) and record the
    job; (job, False) when this Idempotency-Key already started one (nothing stored again)."""
    spec = spec_for(kind, mode)
    limits = limits or cells.Limits()
    if idempotency_key:
        earlier = find_by_key(
            session, tenant_id, started_by, idempotency_key, kind=JOB_KINDS[kind], subject=None
        )
        if earlier is not None:
            return earlier, False
    table = cells.inspect(filename, file, limits)
    map_columns(spec, table.header)
    stored = session.info[STORAGE_KEY].save_stream(file, suffix=table.suffix)
    return jobs.start(
        session,
        tenant_id=tenant_id,
        kind=JOB_KINDS[kind],
        params={
            "kind": kind,
            "file": stored.key,
            "filename": filename,
            "encoding": table.encoding,
            "rows": table.rows,
            "dry_run": dry_run,
            "mode": mode,
            "max_rows": limits.max_rows,
            "max_xlsx_bytes": limits.max_xlsx_bytes,
            "batch_rows": batch_rows or BATCH,
        },
        started_by=started_by,
        store_id=store_id,
        total=table.rows,
        idempotency_key=idempotency_key,
        enqueue=enqueue,
    )


def _import_job(ctx: jobs.JobContext) -> dict:
    """One unit per BATCH rows: the batch's writes, the keys it met (SeenInDatabase), the
    running report and the last row done are committed together, so a resumed job starts
    after the last finished batch and its report equals a clean run's."""
    params, state = ctx.params, ctx.checkpoint
    kind = params["kind"]
    spec = spec_for(kind, params["mode"])
    limits = cells.Limits(max_rows=params["max_rows"], max_xlsx_bytes=params["max_xlsx_bytes"])
    seen = SeenInDatabase(ctx.job_id, ctx.tenant_id)
    size = int(params.get("batch_rows") or BATCH)
    with ctx.unit() as session:
        storage = session.info[STORAGE_KEY]
        run = start_run(
            session,
            ctx.tenant_id,
            dry_run=params["dry_run"],
            by_staff_id=ctx.started_by,
            mode=params["mode"],
        )
        run.seen = seen
        if "now" in state:  # resumed: the same moment as the rows already written
            run.now = datetime.fromisoformat(state["now"])
            run.restore(state.get("report", {}))
        state["now"] = run.now.isoformat()
        if state.get("total") is None:  # a workbook: counted before anything is written
            with storage.open(params["file"]) as file:
                state["total"] = params["rows"] or cells.count_rows(
                    params["filename"], file, limits, params["encoding"]
                )
        ctx.progress(ctx.done, state["total"])
    after = state.get("after", 0)
    with storage.open(params["file"]) as file:
        header, rows = cells.open_rows(
            params["filename"], file, limits, encoding=params["encoding"]
        )
        run.columns = map_columns(spec, header)
        rows = (row for row in rows if row[0] > after)  # the batches done before
        while True:
            batch = list(islice(rows, size))
            with ctx.unit() as session:
                if batch:
                    import_batch(session, spec, run, batch)
                    state["after"] = batch[-1][0]
                last = len(batch) < size
                if last:
                    if not run.rows:
                        raise _no_rows()
                    seen.forget(session)
                state["report"] = run.state()
                done = state["total"] if last else min(state["after"] - 1, state["total"])
                ctx.progress(done, state["total"])
            if last:
                break
    return run.report(kind)


for _kind in JOB_KINDS.values():
    jobs.kind(_kind, unit="rows")(_import_job)


def import_now(session: Session, **options) -> dict:
    """`?wait=true`, the CLI: the same job run to the end in the caller's transaction."""
    job, created = start_import(session, enqueue=False, **options)
    if not created:
        return job.result or {}
    return jobs.run_inline(session, job)
