"""Where uploaded files live: one interface, local disk now, S3-compatible later."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

# Session.info key under which an app's sessions carry its upload storage, so work that runs
# outside a request (a job on a worker) reads the same files without knowing Flask.
SESSION_KEY = "storage"
CHUNK = 1 << 20


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


class LocalStorage:
    """Content-addressed files under one directory: the same bytes are stored once."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def save(self, data: bytes, *, suffix: str) -> StoredFile:
        checksum = hashlib.sha256(data).hexdigest()
        key = f"{checksum[:2]}/{checksum}{suffix}"
        path = self.root / key
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(path.suffix + ".part")
            temporary.write_bytes(data)
            temporary.replace(path)  # atomic: readers never see half a file
        return StoredFile(key=key, size=len(data), checksum=checksum)

    def save_stream(self, stream: BinaryIO, *, suffix: str) -> StoredFile:
        """`save` for a file too big to hold: copied in 1 MB chunks, hashed on the way."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with tempfile.NamedTemporaryFile(dir=self.root, suffix=".part", delete=False) as out:
            try:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            except BaseException:
                os.unlink(out.name)
                raise
        checksum = digest.hexdigest()
        key = f"{checksum[:2]}/{checksum}{suffix}"
        path = self.root / key
        if path.exists():
            os.unlink(out.name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(out.name, path)  # same directory tree: an atomic rename
        return StoredFile(key=key, size=size, checksum=checksum)

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def open(self, key: str) -> BinaryIO:
        """The stored file for reading as a stream (the caller closes it)."""
        return self._path(key).open("rb")

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise FileNotFoundError(key)
        return path
