"""The audit log: who exported, looked at unmasked phones in bulk, merged, transferred, or
changed a role. Written in the same transaction as what it records; HQ lists it."""

from guideapp.audit.service import record

__all__ = ["record"]
