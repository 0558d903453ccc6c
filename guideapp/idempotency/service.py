"""Claim a key inside the request's transaction; store the response in the same commit.

The claim is an INSERT on a unique (owner, key): a concurrent duplicate waits on the
first one's row lock and then finds its stored response, so nothing runs twice.
An error response rolls the claim back with everything else, so a retry runs afresh.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from guideapp.errors import Conflict, InvalidInput
from guideapp.idempotency.models import IdempotentRequest

MAX_KEY_LENGTH = 128
PENDING_KEY = "idempotency_claim"


def begin(
    session: Session, *, key: str, owner: str, method: str, path: str, body: bytes | Iterable[bytes]
):
    """Return the stored response to replay, or claim the key and return None.

    `body` is the request's body, or the pieces that stand for it (an upload's parts,
    hashed as they come: web.py), compared by their SHA-256."""
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            "Idempotency-Key must be 1-128 characters.",
            errors={"Idempotency-Key": ["1-128 characters, one per logical request."]},
        )
    hashed = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n")
    for piece in [body] if isinstance(body, bytes) else body:
        hashed.update(piece)
    digest = hashed.hexdigest()
    existing = _find(session, owner, key)
    if existing is None:
        claim = IdempotentRequest(
            owner=owner, key=key, method=method, path=path[:500], request_hash=digest
        )
        try:
            with session.begin_nested():
                session.add(claim)
                session.flush()
        except IntegrityError:
            existing = _find(session, owner, key)  # a concurrent twin committed first
        else:
            session.info[PENDING_KEY] = claim
            return None
    if existing is None or existing.status_code is None:
        raise Conflict("A request with this Idempotency-Key is still being processed; retry.")
    if existing.request_hash != digest:
        raise InvalidInput(
            "This Idempotency-Key was used for a different request; use a new key.",
            errors={"Idempotency-Key": ["Already used with another method, path or body."]},
        )
    return existing


def finish(session: Session, status_code: int, body: bytes) -> None:
    claim = session.info.pop(PENDING_KEY, None)
    if claim is not None:
        claim.status_code = status_code
        claim.body = body


def _find(session: Session, owner: str, key: str) -> IdempotentRequest | None:
    return session.scalar(
        select(IdempotentRequest).where(
            IdempotentRequest.owner == owner, IdempotentRequest.key == key
        )
    )
