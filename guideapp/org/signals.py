"""What the organisation announces; other domains react (connected in guideapp/wiring.py).

Sent with the SQLAlchemy session as sender; receivers work in the same unit of work.
"""

from __future__ import annotations

from blinker import Namespace

org = Namespace()

staff_signed_off = org.signal(
    "staff-signed-off",
    doc="A staff member left (their logins must end at once) and, with a successor, hands\n"
    "over their members, open tasks and future commissions.\n"
    "kwargs: staff (Staff), successor (Staff | None), by_staff_id.",
)
staff_password_changed = org.signal(
    "staff-password-changed",
    doc="A staff member's password was changed: every login made with the old one ends.\n"
    "kwargs: staff (Staff).",
)
