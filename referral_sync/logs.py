"""Structured (JSON-lines) logging that never prints an e-mail address or a token.

While a job runs, ``log_context(event_id=..., job_id=...)`` puts those fields on every line
logged from that thread (``ContextFilter`` copies them onto each record)."""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_SECRET = re.compile(
    r"(?i)(token|secret|password|authorization|session_?id|bearer)([\"'=:\s]+)[^\s,\"'&]+")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
#: A Salesforce session id (org id + "!" + opaque part) wherever it appears.
_SF_SESSION = re.compile(r"\b00D\w{12,15}![\w.]+")
#: Paths whose last segment is a credential: portal and landing tokens, the Outbound
#: Message path token. Access logs print request paths.
_SECRET_PATH = re.compile(r"(/(?:portal|r|webhooks/salesforce)/)[^\s/?\"']+")
_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "referral_sync_log_context")


def redact(text: str) -> str:
    """``text`` with e-mail addresses and secret values masked."""
    text = _EMAIL.sub("<email>", text)
    text = _SF_SESSION.sub("<redacted>", text)
    text = _SECRET_PATH.sub(r"\1<redacted>", text)
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line of this thread (or task) until the block ends."""
    token = _CONTEXT.set({**_CONTEXT.get({}), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_context() -> dict[str, Any]:
    """The fields ``log_context`` currently adds."""
    return dict(_CONTEXT.get({}))


class ContextFilter(logging.Filter):
    """Copies the ``log_context`` fields onto each record (never overriding ``extra``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get({}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        # Redact the finished line, so no field, nested value or traceback escapes it.
        return redact(json.dumps(payload, default=str))


def configure_logging(level: str = "INFO") -> None:
    """Send JSON log lines to stderr at ``level``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic announces its dialect on every start and huey every task it runs; our own
    # lines already say what each job did, so only their warnings matter to operators.
    for chatty in ("alembic", "huey"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
