"""What every spreadsheet export shares: cells no spreadsheet runs as a formula, fen as yuan.

Amounts are numbers a spreadsheet can sum: fen (分) as integers and yuan (元) as decimals with
two places. Text cells that a spreadsheet would run as a formula (starting with =, +, -, @,
tab or CR: OWASP "CSV injection") get a leading apostrophe.
"""

from __future__ import annotations

from decimal import Decimal

from openpyxl.cell import WriteOnlyCell

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
YUAN_FORMAT = "0.00"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def neutral(value):
    """A text cell no spreadsheet runs as a formula; numbers and None pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def yuan_number(fen: int) -> Decimal:
    """Fen as yuan, exactly: 6495 -> Decimal('64.95'), -150 -> Decimal('-1.50')."""
    return Decimal(fen).scaleb(-2)


def typed(sheet, row: list) -> list:
    """A write-only sheet's row: text stays text (never a formula), yuan show two decimals."""
    cells = []
    for value in row:
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            cell.data_type = "s"  # openpyxl would take a leading '=' as a formula
        elif isinstance(value, Decimal):
            cell.number_format = YUAN_FORMAT
        cells.append(cell)
    return cells
