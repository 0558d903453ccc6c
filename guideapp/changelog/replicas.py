"""Hot standbys that may answer reads, and the one rule for when one may.

A standby replays the primary's WAL in commit order, and every transaction a phone could see
bumps its tenant's `sync_counters` row in the same commit (stamping.py). So a standby whose
counter for the tenant reads N has replayed every change stamped <= N, exactly as the primary
had when its counter read N. A read that must not be older than some sequence S (the phone's
cursor, the newest change in the caller's scopes) may go to any standby whose counter is
>= S; when none is, the primary answers. A lagging or unreachable standby only makes reads
go to the primary: never older, never a cursor that goes backwards (docs/deploy.md).

Sessions here run each statement in autocommit (a standby takes no writes; reads that need
no shared snapshot save the BEGIN/COMMIT round trips, like versioned reads on the primary).
"""

from __future__ import annotations

import itertools
import logging
import threading

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from guideapp.changelog.models import SyncCounter
from guideapp.db import make_autocommit_sessionmaker, make_engine

log = logging.getLogger(__name__)

REPLICA_READS = Counter(
    "guideapp_replica_reads",
    "Reads that could go to a standby, by who answered: standby<N> (caught up), or primary "
    "because every standby was behind the sequence the read needed or unreachable.",
    ["served_by"],
    registry=None,
)


class Replicas:
    """The standbys of one app (GUIDEAPP_REPLICA_URLS), tried in turn from request to request."""

    def __init__(self, urls: list[str], **engine_kwargs):
        self.names = [f"standby{i}" for i in range(len(urls))]
        self._makers: list[sessionmaker[Session]] = [
            make_autocommit_sessionmaker(make_engine(url, **engine_kwargs)) for url in urls
        ]
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._makers)

    def session_at(self, tenant_id: str, *, at_least: int) -> tuple[Session, str] | None:
        """A session on a standby that has replayed the tenant's changes up to `at_least`,
        with its name; None when no standby has (the caller reads the primary)."""
        if not self._makers:
            return None
        with self._lock:  # threads of one worker share the turn
            start = next(self._turn) % len(self._makers)
        for offset in range(len(self._makers)):
            index = (start + offset) % len(self._makers)
            session = self._makers[index]()
            try:
                replayed = session.scalar(
                    select(SyncCounter.value).where(SyncCounter.tenant_id == tenant_id)
                )
            except DBAPIError as error:  # down, restarting, or not yet at this schema
                log.warning(
                    "standby unreachable", extra={"standby": self.names[index], "error": str(error)}
                )
                session.close()
                continue
            if replayed is not None and replayed >= at_least:
                REPLICA_READS.labels(served_by=self.names[index]).inc()
                return session, self.names[index]
            session.close()
        REPLICA_READS.labels(served_by="primary").inc()
        return None
