"""What every value from outside passes before any code uses it: one check, used at each door.

- PostgreSQL text cannot hold a NUL character, and a lone UTF-16 surrogate ("\\ud800") can
  neither be stored nor echoed back as UTF-8: both are refused wherever text comes in.
- JSON nested thousands deep exhausts the parser's recursion; JSON deeper than `MAX_DEPTH`
  containers is refused before any schema sees it.

The doors: the URL and headers of every request (web.py), request bodies (the arguments
parser in extensions.py), the opaque tokens the API hands out and reads back (list cursors,
sync pages) and the claims of access tokens (auth/tokens.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32
NUL_MESSAGE = "Contains a NUL character (\\u0000), which no text here may hold."
SURROGATE_MESSAGE = "Contains a lone UTF-16 surrogate (e.g. \\ud800): not valid Unicode text."

_UNSAFE = re.compile("[\x00\ud800-\udfff]")
# In JSON text, a NUL or a surrogate can only arrive escaped (raw control characters and
# unpaired surrogates are not valid in JSON / UTF-8): without such an escape the parsed
# strings are all clean and need no walk.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


class TooDeep(json.JSONDecodeError):
    """JSON nested deeper than allowed: as malformed as invalid JSON (a 400)."""

    def __init__(self, doc: str, max_depth: int):
        super().__init__(f"JSON may be nested at most {max_depth} levels deep", doc, 0)


class UnsafeText(ValueError):
    """A string (or object key) that no text column or response may carry; `path` is
    where it sits inside the parsed value (keys and list indexes)."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path
        self.message = message

    def errors(self, field: str | None = None) -> dict:
        """The field errors naming where it sits, nested as marshmallow nests them."""
        path = self.path or (field or "_schema",)
        errors: Any = [self.message]
        for key in reversed(path):
            errors = {printable(key) if isinstance(key, str) else key: errors}
        return errors


def printable(text: str) -> str:
    """`text` safe to echo in an answer: its unsafe characters written as escapes."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def text_problem(value: str) -> str | None:
    """Why `value` may not be used as text, or None when it may."""
    found = _UNSAFE.search(value)
    if found is None:
        return None
    return NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE


def check(value: Any, *, max_depth: int = MAX_DEPTH, doc: str = "") -> None:
    """Walk a parsed JSON value (without recursion): raise TooDeep past `max_depth` nested
    containers, UnsafeText at the first string or key that is not clean text."""
    stack: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise UnsafeText(path, problem)
        elif isinstance(item, dict):
            if depth >= max_depth:
                raise TooDeep(doc, max_depth)
            for key, child in item.items():
                if isinstance(key, str) and (problem := text_problem(key)):
                    raise UnsafeText((*path, key), problem)
                stack.append((child, (*path, key), depth + 1))
        elif isinstance(item, list):
            if depth >= max_depth:
                raise TooDeep(doc, max_depth)
            stack.extend((child, (*path, i), depth + 1) for i, child in enumerate(item))


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """JSON from outside: strict UTF-8 (UnicodeDecodeError), valid JSON (JSONDecodeError),
    at most `max_depth` deep (TooDeep, a JSONDecodeError), clean text (UnsafeText)."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep(text, max_depth) from None
    if text.count("[") + text.count("{") > max_depth or _SUSPECT_ESCAPE.search(text):
        check(value, max_depth=max_depth, doc=text)
    return value
