"""Statements of a settled month as Excel (openpyxl) or CSV.

Amounts are fen (分) as integers and yuan (元) as decimals, each column saying its unit; text
that a spreadsheet would run as a formula is neutralised (guideapp/sheets.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from openpyxl import Workbook

from guideapp.sheets import XLSX, neutral, typed, yuan_number

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


def _rows(level: str, statements: Iterable[dict]) -> Iterator[list]:
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


class _Totals:
    """The 合计 row, summed while the rows stream past (the ledger is never held whole)."""

    def __init__(self, level: str):
        self.level = level
        self.rows = self.entries = self.earned = self.clawed_back = self.net = 0

    def add(self, statements: Iterable[dict]) -> Iterator[dict]:
        for s in statements:
            self.rows += 1
            self.entries += s["entries"]
            self.earned += s["earned_fen"]
            self.clawed_back += s["clawed_back_fen"]
            self.net += s["net_fen"]
            yield s

    def row(self) -> list:
        pad = [None] * (HEADERS[self.level].index("条目数") - 1)
        return [
            "合计",
            *pad,
            self.entries,
            self.earned,
            self.clawed_back,
            self.net,
            yuan_number(self.net),
        ]


def write_csv(out: BinaryIO, level: str, statements: Iterable[dict]) -> int:
    """Write the CSV to `out` row by row; returns the rows written (headers aside).
    UTF-8 with a BOM so Excel on Windows opens the Chinese headers correctly."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    try:
        text.write("\ufeff")
        writer = csv.writer(text)
        writer.writerow(HEADERS[level])
        rows = 0
        for row in _rows(level, statements):
            writer.writerow(row)
            rows += 1
        return rows
    finally:
        text.detach()  # `out` stays open: it is the caller's


def write_xlsx(out, settlement, level: str, statements: Iterable[dict]) -> int:
    """Write the workbook to `out` (a path or binary file) with openpyxl's write-only mode:
    rows go to a scratch file as they come; returns the rows written (the total aside)."""
    workbook = Workbook(write_only=True)
    label = "导购" if level == "guide" else "门店"
    sheet = workbook.create_sheet(title=f"{settlement.month} {label}")
    sheet.append(
        [f"佣金结算 {settlement.month}", STATE_WORDS.get(settlement.state, settlement.state)]
    )
    sheet.append(HEADERS[level])
    totals = _Totals(level)
    for row in _rows(level, totals.add(statements)):
        sheet.append(typed(sheet, row))
    sheet.append(typed(sheet, totals.row()))
    workbook.save(out)
    return totals.rows


def to_csv(settlement, level: str, statements: list[dict]) -> bytes:
    buffer = io.BytesIO()
    write_csv(buffer, level, statements)
    return buffer.getvalue()


def to_xlsx(settlement, level: str, statements: list[dict]) -> bytes:
    buffer = io.BytesIO()
    write_xlsx(buffer, settlement, level, statements)
    return buffer.getvalue()


MIMETYPES = {
    "xlsx": XLSX,
    "csv": "text/csv; charset=utf-8",
}
LEVEL_WORDS = {"guide": "导购", "store": "门店"}


def filename(settlement, level: str, fmt: str) -> str:
    return f"commissions-{settlement.month}-{level}.{fmt}"


def file_title(settlement, level: str, fmt: str) -> str:
    """What the download of an export job is called: in the HQ operator's words (sent as
    RFC 5987 filename*, with an ASCII fallback)."""
    return f"佣金结算-{settlement.month}-{LEVEL_WORDS[level]}.{fmt}"
