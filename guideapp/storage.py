"""Where uploaded files live: one interface, local disk now, S3-compatible later."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from guideapp.errors import StorageFull

log = logging.getLogger(__name__)

# A full disk or quota: the client can do nothing but wait; any other OSError is a bug.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT}


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    checksum: str  # sha256 hex


class Storage(Protocol):
    def save(self, data: bytes, *, suffix: str) -> StoredFile: ...
    def save_stream(self, stream: BinaryIO, *, suffix: str) -> StoredFile: ...
    def read(self, key: str) -> bytes: ...
    def open(self, key: str) -> BinaryIO: ...
    def writing(self, *, suffix: str) -> AbstractContextManager[NewFile]: ...
    def path(self, key: str) -> Path: ...


# Session.info: the app's Storage, so services (and jobs in workers) reach the configured
# one without Flask (set by create_app; see `of`).
SESSION_KEY = "storage"
CHUNK = 1 << 20


def of(session) -> Storage:
    return session.info[SESSION_KEY]


@dataclass
class NewFile:
    """A file being written (`path`); `stored` is set once it is in the storage."""

    path: Path
    stored: StoredFile | None = None


class LocalStorage:
    """Content-addressed files under one directory: the same bytes are stored once."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def save(self, data: bytes, *, suffix: str) -> StoredFile:
        checksum = hashlib.sha256(data).hexdigest()
        key = f"{checksum[:2]}/{checksum}{suffix}"
        path = self.root / key
        if not path.exists():
            temporary = path.with_suffix(path.suffix + ".part")
            try:
                with _full_disk_refused():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    temporary.write_bytes(data)
                    temporary.replace(path)  # atomic: readers never see half a file
            except BaseException:
                temporary.unlink(missing_ok=True)  # never half a file left behind
                raise
        return StoredFile(key=key, size=len(data), checksum=checksum)

    def save_stream(self, stream: BinaryIO, *, suffix: str) -> StoredFile:
        """`save` for a file too big to hold (an import's upload): copied in 1 MB chunks."""
        with self.writing(suffix=suffix) as new:
            with new.path.open("wb") as out:
                shutil.copyfileobj(stream, out, CHUNK)
        assert new.stored is not None
        return new.stored

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def open(self, key: str) -> BinaryIO:
        """The stored file for reading as a stream (the caller closes it)."""
        return self.path(key).open("rb")

    @contextmanager
    def writing(self, *, suffix: str) -> Iterator[NewFile]:
        """A scratch file to write in pieces (exports: memory does not grow with the file);
        on a clean exit it is stored as `save` stores bytes (hashed in chunks, moved in).

            with storage.writing(suffix=".csv") as new:
                write(new.path)
            new.stored.key
        """
        scratch = self.root / "scratch"  # under root: the final move is a rename
        with _full_disk_refused():
            scratch.mkdir(parents=True, exist_ok=True)
            directory = Path(tempfile.mkdtemp(dir=scratch))
        try:
            with _full_disk_refused():  # the writer's or the move's; the scratch goes below
                new = NewFile(path=directory / f"file{suffix}")
                yield new
                new.stored = self._keep(new.path, suffix)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def path(self, key: str) -> Path:
        """Where a stored file is, to send it in chunks; FileNotFoundError if it is not."""
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents or not path.is_file():
            raise FileNotFoundError(key)
        return path

    def _keep(self, source: Path, suffix: str) -> StoredFile:
        digest = hashlib.sha256()
        with source.open("rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                digest.update(chunk)
        checksum = digest.hexdigest()
        key = f"{checksum[:2]}/{checksum}{suffix}"
        path = self.root / key
        size = source.stat().st_size
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            source.replace(path)  # atomic: readers never see half a file
        return StoredFile(key=key, size=size, checksum=checksum)


@contextmanager
def _full_disk_refused() -> Iterator[None]:
    """A full disk or quota becomes StorageFull (503, nothing kept); any other OSError stays
    the error it is."""
    try:
        yield
    except OSError as error:
        if error.errno not in _NO_ROOM:
            raise
        log.error("upload storage is full: %s", error)
        raise StorageFull() from error
