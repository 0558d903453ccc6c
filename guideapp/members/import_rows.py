"""Import files (CSV / .xlsx) read into rows, and each cell parsed into a checked value."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from pathlib import PurePath
from typing import Iterator, Sequence

from openpyxl import load_workbook
from openpyxl.utils.datetime import from_excel
from openpyxl.utils.exceptions import InvalidFileException

from guideapp.config import Config
from guideapp.errors import InvalidInput, TooLarge
from guideapp.members.models import CHANNELS
from guideapp.moments import fact_time_problem
from guideapp.phones import normalize_phone

ACCEPTED = "Upload a .csv file (UTF-8, UTF-8 with BOM or GBK) or an Excel .xlsx file."
MAX_FEN = 10**12 - 1  # 10 billion yuan: anything bigger is a wrong column, not an order


class CellError(ValueError):
    """A cell that cannot be used; the message tells the person what to write instead."""


@dataclass(frozen=True)
class Limits:
    """What one import may hold: rows (blank ones included) and, for .xlsx, what its zip
    says it inflates to (checked before anything is decompressed); columns past
    `max_columns` are not read. Defaults: GUIDEAPP_IMPORT_MAX_ROWS / _MAX_XLSX_MB."""

    max_rows: int = Config.IMPORT_MAX_ROWS
    max_xlsx_bytes: int = Config.IMPORT_MAX_XLSX_MB * 1024 * 1024
    max_columns: int = 200


def read_table(
    filename: str, content: bytes, limits: Limits | None = None
) -> tuple[list, Iterator[tuple[int, Sequence]]]:
    """The header row and an iterator of (row number, cells) below it; blank rows skipped.

    A file over `limits` is a 413 (raised before reading an .xlsx, or while iterating)."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        message = f"Unsupported file type '{suffix or filename or '(no name)'}'. {ACCEPTED}"
        raise InvalidInput(message, errors={"file": [message]})
    if not content or not content.strip():
        raise _file_error("The file is empty.")
    limits = limits or Limits()
    if suffix == ".csv":
        rows = _csv_rows(content)
    else:
        _check_inflated_size(content, limits.max_xlsx_bytes)
        rows = _xlsx_rows(content, limits.max_columns)
    numbered = (
        (number, cells)
        for number, cells in enumerate(_at_most(rows, limits.max_rows + 1), start=1)
        if any(c not in (None, "") for c in cells)
    )
    first = next(numbered, None)  # the header: the first row that is not blank
    if first is None:
        raise _file_error("The file is empty.")
    return list(first[1]), numbered


def _file_error(message: str) -> InvalidInput:
    return InvalidInput(message, errors={"file": [message]})


def _too_large(message: str) -> TooLarge:
    return TooLarge(message, errors={"file": [message]})


def _at_most(rows, limit: int):
    """The rows (header included), or a 413 once there are more than `limit`."""
    for count, row in enumerate(rows, start=1):
        if count > limit:
            raise _too_large(
                f"The file has more than {limit - 1:,} rows below the header (blank rows"
                " count); split it into smaller files."
            )
        yield row


def _check_inflated_size(content: bytes, limit: int) -> None:
    """A zip names the uncompressed size of every member, and Python's zipfile never
    inflates a member past it (it fails the CRC check instead), so the sum bounds what
    reading the workbook can decompress: a 300 KB file that inflates to 300 MB stops here."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _file_error(f"Not a readable Excel .xlsx workbook ({exc}). " + ACCEPTED) from exc
    if inflated > limit:
        raise _too_large(
            f"This workbook inflates to {inflated / 2**20:,.0f} MB, more than the "
            f"{limit / 2**20:,.0f} MB an import reads; save it as CSV or split it."
        )


def _csv_rows(content: bytes):
    for encoding in ("utf-8-sig", "gb18030"):  # gb18030 reads every GBK file
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _file_error("The CSV is neither UTF-8 nor GBK text. " + ACCEPTED)
    if "\x00" in text:
        raise _file_error("This is no CSV text file (it contains binary data). " + ACCEPTED)
    try:
        yield from csv.reader(io.StringIO(text, newline=""))
    except csv.Error as exc:  # e.g. a quote never closed: the rest is one giant cell
        raise _file_error(f"The CSV cannot be read ({exc}); check its quotes.") from exc


_XLSX_ERRORS = (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError)


def _xlsx_rows(content: bytes, max_columns: int):
    """Streamed (read-only mode): rows are parsed as they are read, never held as a sheet."""
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except _XLSX_ERRORS as exc:
        raise _file_error(f"Not a readable Excel .xlsx workbook ({exc}). " + ACCEPTED) from exc
    try:
        if not book.worksheets:
            raise _file_error("The workbook has no worksheet. " + ACCEPTED)
        yield from book.worksheets[0].iter_rows(values_only=True, max_col=max_columns)
    except _XLSX_ERRORS as exc:  # e.g. a member that does not inflate to its declared size
        raise _file_error(f"Not a readable Excel .xlsx workbook ({exc}). " + ACCEPTED) from exc
    finally:
        book.close()


def header_key(name) -> str:
    """'*手机号 ' -> '手机号', 'Guide Phone' -> 'guidephone', '金额（元）' -> '金额(元)'."""
    text = str(name or "").strip().lower().replace("（", "(").replace("）", ")")
    return re.sub(r"[\s_\-*:：]", "", text)


def text(raw) -> str:
    """A cell as text; Excel stores phone numbers as numbers (13800000001.0)."""
    if type(raw) is str:  # every CSV cell: the fast path
        return raw.strip()
    if raw is None:
        return ""
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, (datetime, date)):
        return raw.isoformat()
    return str(raw).strip()


def phone(raw, _ctx=None) -> str | None:
    value = text(raw)
    if not value:
        return None
    normal = normalize_phone(value)
    if normal is None:
        raise CellError(f"'{value}' is not a mainland mobile number (11 digits starting with 1).")
    return normal


_UNIONID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def unionid(raw, _ctx=None) -> str | None:
    value = text(raw)
    if value and not _UNIONID.match(value):
        raise CellError(
            f"'{value[:70]}' is not a WeChat unionid (letters, digits, '-' and '_', at most 64)."
        )
    return value or None


def short_text(limit: int):
    def parse(raw, _ctx=None) -> str | None:
        value = text(raw)
        if len(value) > limit:
            raise CellError(f"Longer than {limit} characters; shorten it.")
        return value or None

    return parse


def choice(mapping: dict, hint: str):
    """A value from a fixed list, written in English or Chinese (case-insensitive)."""

    def parse(raw, _ctx=None) -> str | None:
        value = text(raw)
        if not value:
            return None
        if value.lower() not in mapping:
            raise CellError(f"'{value}' is not one of: {hint}.")
        return mapping[value.lower()]

    return parse


GENDERS = {
    "男": "male",
    "male": "male",
    "m": "male",
    "先生": "male",
    "女": "female",
    "female": "female",
    "f": "female",
    "女士": "female",
    "未知": "unknown",
    "保密": "unknown",
    "unknown": "unknown",
}
TIERS = {
    "normal": "normal",
    "普通": "normal",
    "普通会员": "normal",
    "silver": "silver",
    "银卡": "silver",
    "gold": "gold",
    "金卡": "gold",
    "platinum": "platinum",
    "白金": "platinum",
    "白金卡": "platinum",
}
CHANNEL_NAMES = {
    **{c: c for c in CHANNELS},
    "门店": "pos",
    "线下门店": "pos",
    "天猫": "tmall",
    "京东": "jd",
    "抖音": "douyin",
    "品牌商城": "brand_mall",
    "官方商城": "brand_mall",
    "商城": "brand_mall",
    "小程序": "mini_program",
    "扫码": "store_scan",
    "门店扫码": "store_scan",
    "导入": "import",
}
gender = choice(GENDERS, "男, 女, 未知 (or male, female, unknown)")
tier = choice(TIERS, "普通, 银卡, 金卡, 白金 (or normal, silver, gold, platinum)")
channel = choice(
    CHANNEL_NAMES, "门店, 天猫, 京东, 抖音, 品牌商城, 小程序 (or " + ", ".join(CHANNELS) + ")"
)

# 2025-03-01, 2025/3/1 9:30, 2025.03.01 09:30:00, 2025年3月1日: one regex, no strptime loop
_LOCAL = re.compile(
    r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
    r"(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?"
)


def _excel_serial(raw) -> datetime:
    if isinstance(raw, bool) or not 1 <= raw < 2958466:
        raise CellError(f"'{raw}' is not a date.")
    return from_excel(raw)


def birthday(raw, ctx) -> date | None:
    if raw in (None, ""):
        return None
    day = _local_datetime(raw, "YYYY-MM-DD or YYYY/MM/DD").date()
    if day.year < 1900 or day > ctx.now.astimezone(ctx.tz).date():
        raise CellError(f"{day:%Y-%m-%d} cannot be a birthday; check the year.")
    return day


def moment(raw, ctx) -> datetime | None:
    """A date and time; one without a zone is local time in the tenant's zone."""
    if raw in (None, ""):
        return None
    value = _local_datetime(raw, "YYYY-MM-DD HH:MM:SS or YYYY/MM/DD HH:MM")
    try:
        value = (value if value.tzinfo else value.replace(tzinfo=ctx.tz)).astimezone(timezone.utc)
    except OverflowError:
        raise CellError(f"'{text(raw)}' is not a date we can take; check the year.") from None
    problem = fact_time_problem(value, now=ctx.now)  # the rule REST and sync apply
    if problem:
        raise CellError(problem)
    return value


def _local_datetime(raw, hint: str) -> datetime:
    if isinstance(raw, datetime):
        return raw
    if isinstance(raw, date):
        return datetime.combine(raw, time())
    value = text(raw)
    if isinstance(raw, (int, float)) and not 10_000_000 <= raw < 100_000_000:
        return _excel_serial(raw)  # a date cell without date format; 19900101 reads as text
    try:
        match = _LOCAL.fullmatch(value)
        if match:
            year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
            return datetime(year, month, day, hour, minute, second)
        return datetime.fromisoformat(value.replace("Z", "+00:00"))  # zones, fractions
    except ValueError:
        raise CellError(f"'{value}' is not a date; use {hint}.") from None


def yuan(raw, _ctx=None) -> int | None:
    """'199.90' / '¥1,299' -> fen as an integer; Decimal all the way, never a float sum."""
    if raw in (None, ""):
        return None
    value = repr(raw) if isinstance(raw, float) else text(raw)
    value = re.sub(r"[¥￥,，元\s]", "", value)
    try:
        fen = Decimal(value) * 100
    except InvalidOperation:
        raise CellError(f"'{value}' is not an amount in yuan, e.g. 199.90.") from None
    if not fen.is_finite() or fen < 0 or fen > MAX_FEN:
        raise CellError(f"'{value}' is not an amount in yuan between 0 and 10 billion.")
    if fen != fen.to_integral_value():
        raise CellError(f"'{value}' has more than 2 decimals; amounts are in yuan and fen.")
    return int(fen)


def whole_number(raw, _ctx=None) -> int | None:
    value = text(raw).replace(",", "")
    if not value:
        return None
    if not re.fullmatch(r"\d{1,12}", value):
        raise CellError(f"'{value}' is not a whole number of 0 or more.")
    return int(value)


def fen(raw, _ctx=None) -> int | None:
    value = whole_number(raw)
    if value is not None and value > MAX_FEN:
        raise CellError(f"'{value}' fen is more than 10 billion yuan.")
    return value


def guide(raw, ctx) -> dict | None:
    number = phone(raw)
    if number is None:
        return None
    found = ctx.guides.get(number)
    if found is None:
        raise CellError(f"No active guide with phone {number} in this brand group.")
    return found


def store(raw, ctx) -> str | None:
    code = text(raw)
    if not code:
        return None
    if code not in ctx.stores:
        raise CellError(f"No store with code '{code}' in this brand group.")
    return ctx.stores[code]
