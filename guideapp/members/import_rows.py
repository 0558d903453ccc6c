"""Import files (CSV / .xlsx) read into rows, and each cell parsed into a checked value."""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from pathlib import PurePath
from typing import BinaryIO, Iterator, Sequence

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


@dataclass(frozen=True)
class Table:
    """What a look at an import file found at once: its header row, how to decode it (CSV)
    and how many rows it has below the header, blank ones included (None: not known yet)."""

    suffix: str
    header: list
    encoding: str | None
    rows: int | None


def read_table(
    filename: str, content: bytes, limits: Limits | None = None
) -> tuple[list, Iterator[tuple[int, Sequence]]]:
    """The header row and an iterator of (row number, cells) below it; blank rows skipped.

    A file over `limits` is a 413 (raised before reading an .xlsx, or while iterating)."""
    return open_rows(filename, io.BytesIO(content), limits)


def inspect(filename: str, file: BinaryIO, limits: Limits | None = None) -> Table:
    """Everything that needs no import work, checked at once (a 4xx before any job): the
    file type, the encoding, the header; a CSV's rows counted (a quick pass that parses no
    cell), a workbook's rows as its sheet declares them. Streams: nothing held whole."""
    limits = limits or Limits()
    suffix = _suffix(filename)
    encoding = _csv_encoding(file) if suffix == ".csv" else None
    file.seek(0)
    header, rows = open_rows(filename, file, limits, encoding=encoding)
    counted: int | None = None
    if suffix == ".csv":
        counted = sum(1 for _ in rows)  # _at_most refuses more than the limit on the way
    else:
        declared = _xlsx_declared_rows(file)
        if declared is not None and declared > limits.max_rows + 1:
            raise _too_large(
                f"The workbook says it has {declared - 1:,} rows below the header, more than"
                f" {limits.max_rows:,}; split it into smaller files."
            )
    file.seek(0)
    return Table(suffix=suffix, header=header, encoding=encoding, rows=counted)


def count_rows(filename: str, file: BinaryIO, limits: Limits, encoding: str | None) -> int:
    """Rows below the header, blank ones included; a 413 past the limit (nothing parsed)."""
    _, rows = open_rows(filename, file, limits, encoding=encoding, skip_blank=False)
    return sum(1 for _ in rows)


def open_rows(
    filename: str,
    file: BinaryIO,
    limits: Limits | None = None,
    *,
    encoding: str | None = None,
    skip_blank: bool = True,
) -> tuple[list, Iterator[tuple[int, Sequence]]]:
    """`read_table` on a binary file read as it goes: memory does not grow with the file.
    Row numbers count every row of the file (the header's included), as people see them."""
    suffix = _suffix(filename)
    limits = limits or Limits()
    if suffix == ".csv":
        rows = _csv_rows(file, encoding or _csv_encoding(file))
    else:
        head = file.read(512)
        file.seek(0)
        if not head.strip() and len(head) < 512:
            raise _file_error("The file is empty.")
        _check_inflated_size(file, limits.max_xlsx_bytes)
        rows = _xlsx_rows(file, limits.max_columns)
    numbered = (
        (number, cells)
        for number, cells in enumerate(_at_most(rows, limits.max_rows + 1), start=1)
        if not skip_blank or any(c not in (None, "") for c in cells)
    )
    first = next(
        ((n, c) for n, c in numbered if any(x not in (None, "") for x in c)), None
    )  # the header: the first row that is not blank
    if first is None:
        raise _file_error("The file is empty.")
    return list(first[1]), numbered


def _suffix(filename: str) -> str:
    suffix = PurePath(filename or "").suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        message = f"Unsupported file type '{suffix or filename or '(no name)'}'. {ACCEPTED}"
        raise InvalidInput(message, errors={"file": [message]})
    return suffix


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


def _check_inflated_size(file: BinaryIO, limit: int) -> None:
    """A zip names the uncompressed size of every member, and Python's zipfile never
    inflates a member past it (it fails the CRC check instead), so the sum bounds what
    reading the workbook can decompress: a 300 KB file that inflates to 300 MB stops here."""
    try:
        file.seek(0)
        with zipfile.ZipFile(file) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _file_error(f"Not a readable Excel .xlsx workbook ({exc}). " + ACCEPTED) from exc
    finally:
        file.seek(0)
    if inflated > limit:
        raise _too_large(
            f"This workbook inflates to {inflated / 2**20:,.0f} MB, more than the "
            f"{limit / 2**20:,.0f} MB an import reads; save it as CSV or split it."
        )


def _csv_encoding(file: BinaryIO) -> str:
    """UTF-8 (with or without BOM), else GBK: the whole file decoded chunk by chunk and
    thrown away, so an undecodable byte near the end is refused before any row is used."""
    for encoding in ("utf-8-sig", "gb18030"):  # gb18030 reads every GBK file
        file.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)()
        empty, binary = True, False
        try:
            while chunk := file.read(1 << 20):
                empty = empty and not chunk.strip()
                binary = binary or b"\x00" in chunk
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        finally:
            file.seek(0)
        if empty:
            raise _file_error("The file is empty.")
        if binary:
            raise _file_error("This is no CSV text file (it contains binary data). " + ACCEPTED)
        return encoding
    raise _file_error("The CSV is neither UTF-8 nor GBK text. " + ACCEPTED)


def _csv_rows(file: BinaryIO, encoding: str):
    text = io.TextIOWrapper(file, encoding=encoding, newline="")
    try:
        yield from csv.reader(text)
    except csv.Error as exc:  # e.g. a quote never closed: the rest is one giant cell
        raise _file_error(f"The CSV cannot be read ({exc}); check its quotes.") from exc
    finally:
        if not file.closed:
            text.detach()  # the caller owns the file


def _xlsx_declared_rows(file: BinaryIO) -> int | None:
    """The first sheet's row count as its <dimension> says (cheap; may be absent or stale:
    the job counts again while it reads)."""
    file.seek(0)
    try:
        book = load_workbook(file, read_only=True, data_only=True)
        try:
            return book.worksheets[0].max_row if book.worksheets else None
        finally:
            book.close()
    except _XLSX_ERRORS:
        return None
    finally:
        file.seek(0)


_XLSX_ERRORS = (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError)


def _xlsx_rows(file: BinaryIO, max_columns: int):
    """Streamed (read-only mode): rows are parsed as they are read, never held as a sheet."""
    try:
        book = load_workbook(file, read_only=True, data_only=True)
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
