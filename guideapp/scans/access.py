"""Who sees and changes scan codes, and who sees the scans they recorded."""

from sqlalchemy import true

from guideapp import policy
from guideapp.scans.models import Scan, ScanCode


def _scan_codes(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return ScanCode.store_id == actor.store_id
    return ScanCode.guide_id == actor.staff_id  # a guide's own personal code(s)


def _scan_code_writes(actor, code, action):
    if actor.is_hq:
        return True
    # Managers make and keep their own store's store and guide codes; LBS codes are HQ's.
    return actor.is_manager and code.kind in ("store", "guide") and code.store_id == actor.store_id


def _scans(actor):
    if actor.is_hq:
        return true()
    if actor.is_manager:
        return Scan.store_id == actor.store_id
    return Scan.guide_id == actor.staff_id


def register() -> None:
    policy.register_rules(ScanCode, read=_scan_codes, write=_scan_code_writes)
    policy.register_rules(Scan, read=_scans)
