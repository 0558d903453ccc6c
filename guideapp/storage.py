"""Where uploaded files live: one interface, local disk now, S3-compatible later."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    checksum: str  # sha256 hex


class Storage(Protocol):
    def save(self, data: bytes, *, suffix: str) -> StoredFile: ...
    def read(self, key: str) -> bytes: ...


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

    def read(self, key: str) -> bytes:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise FileNotFoundError(key)
        return path.read_bytes()
