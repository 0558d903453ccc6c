"""The pure rules of a coupon: its discount, its validity window, its code.

Money is integer fen. A percentage is in basis points of the order (2000 = 20% off, what
a Chinese till calls a "八折" coupon: the member pays 80%; "两折" means paying 20%, i.e.
8000 bp off). The discount is rounded *down* to the fen and never exceeds the cap nor
what is left of the order, so a member never pays less than the coupons promise and
the brand never gives more.
"""

from __future__ import annotations

import base64
import os
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Crockford's base32 without I, L, O, U: nothing a cashier can misread. 16 characters
# are 80 random bits: guessing one of 80 million live codes is ~1 in 10^16 per try, and
# two of 80 million codes colliding (a failed insert, retried) ~1 in 10^8.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 16


# RFC 4648's base32 letters -> ours: a code is 10 random bytes in base32, exactly 16
# characters without padding (in C: 16 calls of secrets.choice per code were a third of a
# bulk issue's time).
_FROM_RFC4648 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ALPHABET)
_CODE_BYTES = CODE_LENGTH * 5 // 8


def new_code() -> str:
    return base64.b32encode(os.urandom(_CODE_BYTES)).decode().translate(_FROM_RFC4648)


def normalise_code(code: str) -> str:
    """What a cashier typed, as stored: upper case, without spaces or dashes."""
    return code.strip().upper().replace("-", "").replace(" ", "")


def discount_fen(
    *,
    kind: str,
    amount_fen: int,
    amount_off_fen: int | None = None,
    percent_off_bp: int | None = None,
    max_discount_fen: int | None = None,
) -> int:
    """The discount on `amount_fen` (what is left of the order before this coupon)."""
    if amount_fen <= 0:
        return 0
    if kind == "amount_off":
        off = amount_off_fen or 0
    elif kind == "percent_off":
        off = amount_fen * (percent_off_bp or 0) // 10_000
        if max_discount_fen is not None:
            off = min(off, max_discount_fen)
    else:  # a gift takes nothing off the bill
        off = 0
    return max(0, min(off, amount_fen))


def validity(
    *,
    issued_at: datetime,
    zone: ZoneInfo,
    valid_from: datetime | None,
    valid_to: datetime | None,
    valid_days: int | None,
) -> tuple[datetime, datetime]:
    """A fixed window as the template says, or `valid_days` local days: from the moment of
    issue to the end of the last day in the tenant's zone (issued on the 1st with 7 days:
    usable through the 7th, 23:59:59.999 local)."""
    if valid_days is not None:
        first_day: date = issued_at.astimezone(zone).date()
        end = datetime.combine(first_day + timedelta(days=valid_days), time(0), zone)
        return issued_at, end
    assert valid_from is not None and valid_to is not None
    return valid_from, valid_to
