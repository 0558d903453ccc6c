"""Rendered pages (the inbox, /me), kept per process while nothing they show has changed.

A page is keyed by who asks and what they ask, and stamped with the newest change-log
sequence in the asker's scopes (every change a phone must learn about is logged there, see
SYNC.md) and, for the inbox, with the next moment a task of theirs opens or falls due. A
request reads that sequence with its login check (Blueprint.versioned_read); when it and
the clock still match the stamp, the stored bytes are the answer, with the same ETag, so a
phone that sends If-None-Match gets a 304. Without the cache every page is simply built.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from cachetools import LRUCache

ENTRY_OVERHEAD = 300  # bytes an entry costs besides its body: key, stamp, ETag
FOREVER = datetime.max.replace(tzinfo=timezone.utc)  # a page the clock alone never changes


@dataclass(frozen=True)
class CachedPage:
    version: int
    valid_until: datetime
    etag: str
    body: bytes


def page(version: int, valid_until: datetime, body: bytes) -> CachedPage:
    return CachedPage(
        version=version,
        valid_until=valid_until,
        body=body,
        etag=hashlib.blake2b(body, digest_size=12).hexdigest(),
    )


class PageCache:
    """A least-recently-used store bounded in bytes; max_bytes=0 keeps nothing."""

    def __init__(self, max_bytes: int):
        self._pages: LRUCache | None = (
            LRUCache(maxsize=max_bytes, getsizeof=lambda p: len(p.body) + ENTRY_OVERHEAD)
            if max_bytes > 0
            else None
        )
        self._lock = threading.Lock()

    def get(self, key: tuple, *, version: int, now: datetime) -> CachedPage | None:
        if self._pages is None:
            return None
        with self._lock:
            found = self._pages.get(key)
        if found is None or found.version != version or now >= found.valid_until:
            return None
        return found

    def put(self, key: tuple, entry: CachedPage) -> None:
        if self._pages is None:
            return
        with self._lock:
            try:
                self._pages[key] = entry
            except ValueError:  # one page larger than the whole cache: serve it uncached
                pass


def kept_page(
    cache: PageCache, key: tuple, *, version: int, now: datetime, build: Callable[[], bytes]
) -> CachedPage:
    """The page for `key` at change `version`: kept, or built now and kept (for a page that
    only the change log moves, not the clock)."""
    found = cache.get(key, version=version, now=now)
    if found is None:
        found = page(version, FOREVER, build())
        cache.put(key, found)
    return found
