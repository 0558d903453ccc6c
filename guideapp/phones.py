"""Mainland China mobile numbers: one normal form for matching, one mask for display."""

import re

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


def mask_phone(phone: str | None) -> str | None:
    """'13812341234' -> '138****1234'."""
    if not phone:
        return phone
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"
