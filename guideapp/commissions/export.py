"""Statements of a settled month as Excel (openpyxl) or CSV.

Amounts are numbers a spreadsheet can sum: fen (分) as integers and yuan (元) as decimals with
two places, each column saying its unit. Text cells that a spreadsheet would run as a formula
(starting with =, +, -, @, tab or CR: OWASP "CSV injection") get a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

HEADERS = {
    "guide": [
        "月份",
        "导购ID",
        "导购",
        "导购手机号",
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
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
YUAN_FORMAT = "0.00"


def neutral(value):
    """A text cell no spreadsheet runs as a formula; numbers and None pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def yuan_number(fen: int) -> Decimal:
    """Fen as yuan, exactly: 6495 -> Decimal('64.95'), -150 -> Decimal('-1.50')."""
    return Decimal(fen).scaleb(-2)


def _rows(level: str, statements: list[dict]):
    for s in statements:
        who = [s["name"], s.get("guide_phone")] if level == "guide" else [s["name"]]
        where = [s["store_id"], s["store_name"]] if level == "guide" else []
        yield [
            neutral(v)
            for v in (
                s["month"],
                s["subject_id"],
                *who,
                *where,
                s["entries"],
                s["earned_fen"],
                s["clawed_back_fen"],
                s["net_fen"],
            )
        ] + [yuan_number(s["net_fen"])]


def _total(level: str, statements: list[dict]) -> list:
    total = sum(s["net_fen"] for s in statements)
    pad = [None] * (HEADERS[level].index("条目数") - 1)
    return [
        "合计",
        *pad,
        sum(s["entries"] for s in statements),
        sum(s["earned_fen"] for s in statements),
        sum(s["clawed_back_fen"] for s in statements),
        total,
        yuan_number(total),
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
    for row in (*_rows(level, statements), _total(level, statements)):
        sheet.append(_typed(sheet, row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _typed(sheet, row: list) -> list:
    """Text stays text (never a formula), the yuan column shows two decimals."""
    cells = []
    for value in row:
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            cell.data_type = "s"  # openpyxl would take a leading '=' as a formula
        elif isinstance(value, Decimal):
            cell.number_format = YUAN_FORMAT
        cells.append(cell)
    return cells


def filename(settlement, level: str, fmt: str) -> str:
    return f"commissions-{settlement.month}-{level}.{fmt}"
