"""The change log: what changed, in which scopes, in commit order (ground floor).

Domains note their changes with `log_change` / `log_changes` / `log_changes_from_select`
in the same transaction as the change; the notes are stamped with the tenant's
commit-ordered sequence by a session event on every commit (stamping.py), so a commit
can never forget them. Sync (above the domains) reads the log; nothing here knows it.
"""

from guideapp.changelog import stamping  # noqa: F401  (registers the commit event)
from guideapp.changelog.log import (
    log_change,
    log_changes,
    log_changes_from_select,
    newest_change_seq,
)
from guideapp.changelog.models import ChangeLogEntry, SyncCounter
from guideapp.changelog.scopes import (
    region_scope,
    scope_column,
    scopes_followed,
    staff_scope,
    store_scope,
    tenant_scope,
)
from guideapp.changelog.stamping import stamp_ctes, stamp_parameters, stamp_pending_changes

__all__ = [
    "ChangeLogEntry",
    "SyncCounter",
    "log_change",
    "log_changes",
    "log_changes_from_select",
    "newest_change_seq",
    "region_scope",
    "scope_column",
    "scopes_followed",
    "staff_scope",
    "stamp_ctes",
    "stamp_parameters",
    "stamp_pending_changes",
    "store_scope",
    "tenant_scope",
]
