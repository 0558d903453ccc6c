"""Statements of a settled month as Excel (openpyxl) or CSV; amounts in fen and in yuan."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook

from guideapp.commissions.rules import yuan

HEADERS = {
    "guide": [
        "月份",
        "导购ID",
        "导购",
        "门店ID",
        "门店",
        "条目数",
        "获得(分)",
        "扣回(分)",
        "实得(分)",
        "实得(元)",
    ],
    "store": ["月份", "门店ID", "门店", "条目数", "获得(分)", "扣回(分)", "实得(分)", "实得(元)"],
}
STATE_WORDS = {"draft": "草稿（待审批）", "approved": "已审批"}


def _rows(level: str, statements: list[dict]):
    for s in statements:
        where = [s["store_id"], s["store_name"]] if level == "guide" else []
        yield [
            s["month"],
            s["subject_id"],
            s["name"],
            *where,
            s["entries"],
            s["earned_fen"],
            s["clawed_back_fen"],
            s["net_fen"],
            yuan(s["net_fen"]),
        ]


def to_csv(settlement, level: str, statements: list[dict]) -> bytes:
    """UTF-8 with a BOM so Excel on Windows opens the Chinese headers correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADERS[level])
    writer.writerows(_rows(level, statements))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(settlement, level: str, statements: list[dict]) -> bytes:
    workbook = Workbook(write_only=True)
    label = "导购" if level == "guide" else "门店"
    sheet = workbook.create_sheet(title=f"{settlement.month} {label}")
    sheet.append(
        [f"佣金结算 {settlement.month}", STATE_WORDS.get(settlement.state, settlement.state)]
    )
    sheet.append(HEADERS[level])
    for row in _rows(level, statements):
        sheet.append(row)
    total = sum(s["net_fen"] for s in statements)
    pad = ["", "", ""] if level == "store" else ["", "", "", "", ""]
    sheet.append(
        [
            "合计",
            *pad[1:],
            sum(s["entries"] for s in statements),
            sum(s["earned_fen"] for s in statements),
            sum(s["clawed_back_fen"] for s in statements),
            total,
            yuan(total),
        ]
    )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def filename(settlement, level: str, fmt: str) -> str:
    return f"commissions-{settlement.month}-{level}.{fmt}"
