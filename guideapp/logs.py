"""JSON logs on stderr, one line per event, with the request id where there is one.

Every line is redacted on its way out, whatever wrote it (our code, a library, a traceback):
phone numbers keep their first three and last four digits, bearer tokens, JWTs and
password or secret fields lose their values. SQL parameters never reach a log at all
(db.make_engine: hide_parameters)."""

import logging
import re
import sys
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

# Mainland mobile numbers, alone or after +86 / 86 (not inside longer digit runs: ids).
_PHONE = re.compile(r"(?<!\d)((?:\+?86)?1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_SECRET_FIELD = re.compile(
    r"""((?:password|passwd|secret|token|api_?key|session_key|apiv3_key)\\?["']?\s*[:=]\s*\\?["']?)"""
    r"""[^"'\s,}&\\]+""",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    text = _JWT.sub("[jwt]", text)
    text = _BEARER.sub(r"\1[redacted]", text)
    text = _SECRET_FIELD.sub(r"\1[redacted]", text)
    return _PHONE.sub(r"\1****\3", text)


# Fields every line logged in this context carries (a job's id while it runs; a request's id).
_context: ContextVar[dict | None] = ContextVar("guideapp_log_context", default=None)


@contextmanager
def log_context(**fields):
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_context.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class RedactingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level"},
        )
    )
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
