"""The audit log is HQ's to read; nobody writes it but the services recording acts."""

from guideapp import policy
from guideapp.audit.models import AuditEntry


def register() -> None:
    policy.register_rules(AuditEntry, read=policy.hq_reads)
    policy.register_decision(
        "audit.read", lambda actor: actor.is_hq, refusal="The audit log is HQ's to read."
    )
