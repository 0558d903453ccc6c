"""Mainland China mobile numbers: one normal form for matching, one mask for display."""

import re

from guideapp.errors import InvalidInput

_NOISE = re.compile(r"[\s\-()]")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def normalize_phone(raw: str) -> str | None:
    """'+86 138-0000-0001' -> '13800000001'; None when it is no mainland mobile number."""
    digits = _NOISE.sub("", raw or "")
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix) :]
            break
    return digits if _MOBILE.match(digits) else None


NOT_A_MOBILE = "Not a mainland mobile number (11 digits)."


def require_phone(raw, field: str = "phone") -> str:
    """The normal form of `raw`, or a 422 naming `field` (members, orders and scans alike)."""
    phone = normalize_phone(raw) if isinstance(raw, str) else None
    if phone is None:
        raise InvalidInput(errors={field: [NOT_A_MOBILE]})
    return phone


def mask_phone(phone: str | None) -> str | None:
    """'13812341234' -> '138****1234'."""
    if not phone:
        return phone
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"
