"""The coupon report as an Excel workbook, built by a job and downloaded from it
(`GET /api/v1/jobs/<id>/download`), as commission statements are (docs/jobs.md, exports).

An export writes nothing to the database: the job builds the file outside any unit of work
(it can simply be redone), then one short unit records the stored file. It shows what its
starter may see when it runs.
"""

from __future__ import annotations

from datetime import date

from openpyxl import Workbook
from sqlalchemy.orm import Session

from guideapp.org.service import active_actor
from guideapp import audit, jobs, storage
from guideapp.coupons import reports
from guideapp.errors import DomainError
from guideapp.policy.actor import Actor
from guideapp.sheets import XLSX, neutral, typed, yuan_number

KIND = "coupons.report_export"
GROUP_WORDS = {
    "template": "券模板",
    "campaign": "活动",
    "rule": "规则",
    "guide": "导购",
    "store": "门店",
    "day": "日期",
}
HEADERS = [
    "核销率",
    "优惠(分)",
    "优惠(元)",
    "订单数",
    "订单实付GMV(分)",
    "订单实付GMV(元)",
]


def start_export(
    session: Session,
    *,
    actor: Actor,
    group_by: str,
    template_id: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    idempotency_key: str | None = None,
) -> tuple[jobs.Job, bool]:
    """The job exporting the report (HQ, managers: their store's); its window is fixed now,
    so the file holds the days asked for whenever it runs."""
    checked = reports.scope(
        session, actor=actor, date_from=date_from, date_to=date_to, template_id=template_id
    )
    window = f"{checked.date_from.isoformat()}:{checked.date_to.isoformat()}"
    audit.record(
        session,
        tenant_id=actor.tenant_id,
        staff_id=actor.staff_id,
        action="coupons.export",
        target_kind="coupon_template" if template_id else None,
        target_id=template_id,
        details={"group_by": group_by, "window": window},
    )
    return jobs.start(
        session,
        tenant_id=actor.tenant_id,
        kind=KIND,
        params={
            "group_by": group_by,
            "template_id": template_id,
            "from": checked.date_from.isoformat(),
            "to": checked.date_to.isoformat(),
        },
        started_by=actor.staff_id,
        store_id=actor.store_id,
        subject=f"coupon-report:{group_by}:{template_id or '-'}:{window}",
        idempotency_key=idempotency_key,
    )


@jobs.kind(KIND, unit="rows")
def _export_job(ctx: jobs.JobContext) -> dict:
    params = ctx.params
    kept = ctx.checkpoint.get("file")
    if kept is None:
        with ctx.reading() as session:
            checked = reports.scope(
                session,
                actor=_starter(session, ctx),
                date_from=date.fromisoformat(params["from"]),
                date_to=date.fromisoformat(params["to"]),
                template_id=params["template_id"],
            )
            report = reports.report(session, scope=checked, group_by=params["group_by"])
            with storage.of(session).writing(suffix=".xlsx") as new:
                rows = write_xlsx(str(new.path), report)
            assert new.stored is not None
        title = f"{params['from']}-{params['to']}"
        with ctx.unit():
            ctx.keep_file(
                key=new.stored.key,
                filename=f"优惠券报表-{GROUP_WORDS[params['group_by']]}-{title}.xlsx",
                ascii_filename=f"coupons-{params['group_by']}-{title}.xlsx",
                content_type=XLSX,
                size=new.stored.size,
            )
            ctx.checkpoint["rows"] = rows
            ctx.progress(rows, rows)
        kept = ctx.checkpoint["file"]
    return {
        "group_by": params["group_by"],
        "from": params["from"],
        "to": params["to"],
        "download_url": f"{jobs.job_url(ctx.job_id)}/download",
        "filename": kept["filename"],
        "content_type": kept["content_type"],
        "size": kept["size"],
        "rows": ctx.checkpoint["rows"],
    }


def write_xlsx(out, report: dict) -> int:
    """The report as one sheet (a title line, headers, rows, the 合计 line); the rows written."""
    workbook = Workbook(write_only=True)
    word = GROUP_WORDS[report["group_by"]]
    sheet = workbook.create_sheet(title=f"按{word}")
    sheet.append(
        typed(
            sheet,
            [
                f"优惠券报表 {report['date_from']} 至 {report['date_to']}",
                f"时区 {report['timezone']}",
            ],
        )
    )
    named = report["group_by"] != "day"
    sheet.append(
        [word + ("ID" if named else ""), *(["名称"] if named else []), "发放", "核销", *HEADERS]
    )
    for row in report["rows"]:
        key = [neutral(row["key"]), *([neutral(row["name"])] if named else [])]
        sheet.append(typed(sheet, key + _figures(row)))
    total = ["合计", *([None] if named else [])]
    sheet.append(typed(sheet, total + _figures(report["totals"])))
    workbook.save(out)
    return len(report["rows"])


def _figures(row: dict) -> list:
    return [
        row["issued"],
        row["redeemed"],
        row["redemption_rate"],
        row["discount_fen"],
        yuan_number(row["discount_fen"]),
        row["orders"],
        row["gmv_fen"],
        yuan_number(row["gmv_fen"]),
    ]


def _starter(session: Session, ctx: jobs.JobContext) -> Actor:
    """The export shows what its starter may see now, as when they asked for it."""
    actor = active_actor(session, tenant_id=ctx.tenant_id, staff_id=ctx.started_by)
    if actor is None:
        raise DomainError(
            "The person who asked for this export no longer works here; "
            "ask someone at HQ to export the report again."
        )
    return actor
