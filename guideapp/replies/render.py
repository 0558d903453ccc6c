"""Placeholder templates: parsed by string.Formatter, whitelisted fields, literal values."""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import date, datetime

# Every placeholder a script may use, with what it shows. Nothing else is ever looked up.
FIELDS: dict[str, str] = {
    "member.name": "the member's name",
    "member.points": "points balance",
    "member.tier": "tier (普通会员, 银卡会员, 金卡会员, 白金会员)",
    "member.stage": "lifecycle stage (潜客, 粉丝, 顾客, 熟客, 大使)",
    "member.birthday": "birthday as 3月8日",
    "member.last_order.product": "product names of the last order, joined with 、",
    "member.last_order.date": "date of the last order as 2026年3月8日 (tenant's zone)",
    "member.last_order.amount": "amount paid for the last order in yuan, e.g. 699.00",
    "store.name": "the sender's store (the member's store when HQ renders)",
    "store.address": "that store's address",
    "guide.name": "the sender's name",
}
TIER_LABELS = {
    "normal": "普通会员",
    "silver": "银卡会员",
    "gold": "金卡会员",
    "platinum": "白金会员",
}
STAGE_LABELS = {
    "prospect": "潜客",
    "fan": "粉丝",
    "customer": "顾客",
    "regular": "熟客",
    "ambassador": "大使",
}
_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be used; `problems` says why, placeholder by placeholder."""

    def __init__(self, problems: list[str], unknown: list[str] | None = None):
        super().__init__("; ".join(problems))
        self.problems = problems
        self.unknown = unknown or []


@dataclass(frozen=True)
class Template:
    parts: tuple[tuple[str, str | None], ...]  # (literal text, field or None)

    @property
    def fields(self) -> list[str]:
        return list(dict.fromkeys(field for _, field in self.parts if field))


def parse(body: str) -> Template:
    """Split a body into literal text and whitelisted fields, or raise TemplateError.

    `{{` and `}}` are literal braces; conversions (`!r`), format specs (`:>10`) and any
    field outside FIELDS (attribute or index access included) are refused."""
    try:
        pieces = list(_FORMATTER.parse(body))
    except ValueError as exc:
        raise TemplateError(
            [f"Braces do not match ({exc}); write {{{{ and }}}} for a literal brace."]
        ) from None
    parts: list[tuple[str, str | None]] = []
    problems: list[str] = []
    unknown: list[str] = []
    for literal, field, spec, conversion in pieces:
        if field is None:
            parts.append((literal, None))
            continue
        shown = (
            "{"
            + field
            + (f"!{conversion}" if conversion else "")
            + (f":{spec}" if spec else "")
            + "}"
        )
        if conversion is not None:
            problems.append(f"{shown}: conversions like !r are not allowed.")
        elif spec:
            problems.append(f"{shown}: format specs after ':' are not allowed.")
        elif field not in FIELDS:
            unknown.append(shown)
        parts.append((literal, field))
    if unknown:
        problems.append(
            f"Unknown placeholders: {', '.join(dict.fromkeys(unknown))}. "
            f"Allowed: {', '.join('{' + f + '}' for f in FIELDS)}."
        )
    if problems:
        raise TemplateError(problems, unknown=list(dict.fromkeys(unknown)))
    return Template(tuple(parts))


def compose(template: Template, values: dict[str, str]) -> str:
    """Literal text and values joined as they are: nothing in a value is read as a template.

    A field with no value (no last order, no birthday) is empty text."""
    return "".join(
        literal + ((values.get(field) or "") if field else "") for literal, field in template.parts
    )


def yuan(fen: int) -> str:
    """Integer fen as yuan text: 69900 -> '699.00', -5 -> '-0.05'."""
    sign, fen = ("-" if fen < 0 else ""), abs(int(fen))
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def month_day(day: date | None) -> str:
    return f"{day.month}月{day.day}日" if day else ""


def full_date(moment: datetime | None, tz) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(tz)
    return f"{local.year}年{local.month}月{local.day}日"


def product_names(items) -> str:
    """Names of an order's items (whatever shape the channel sent), joined with 、."""
    if not isinstance(items, list):
        return ""
    names = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, (str, int, float)) and not isinstance(name, bool) and str(name):
            names.append(str(name))
    return "、".join(names)
