"""What the scans domain announces or asks for; other domains answer (wired in
guideapp/wiring.py). The sender is always the SQLAlchemy session of the unit of work.
"""

from __future__ import annotations

from blinker import Namespace

scans = Namespace()

code_changed = scans.signal(
    "code-changed",
    doc="A code was created or edited (its guides, validity, switched on or off): whatever "
    "mirrors it elsewhere (WeCom's contact ways) catches up. kwargs: code (ScanCode).",
)
scan_resolved = scans.signal(
    "scan-resolved",
    doc="A scan was routed; its answer is being assembled. kwargs: code (ScanCode), "
    "resolution, store_id, guide_id (None: nobody), member_id (the member WeChat "
    "identified; None: an anonymous scan). Receivers return a dict of extra answer fields "
    "(e.g. {'wecom_qr_code': url}, {'coupon': {...}}); they must not call other services "
    "over the network (the consumer is waiting).",
)
