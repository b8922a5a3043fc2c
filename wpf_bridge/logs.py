"""Log lines: plain text, or one JSON object per line (``WPF_LOG_FORMAT=json``) for a log
collector; either way with secrets redacted, and the delivery a worker line is about."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from .redact import RedactingFormatter, json_safe, redact

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_delivery: ContextVar[str | None] = ContextVar("delivery_id", default=None)


@contextmanager
def log_context(delivery_id: str) -> Iterator[None]:
    """Lines logged inside carry this delivery's id (JSON lines as ``delivery_id``)."""
    token = _delivery.set(delivery_id)
    try:
        yield
    finally:
        _delivery.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; each value is redacted before it is encoded, so escaping
    cannot hide a secret from the redaction."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if delivery_id := _delivery.get():
            entry["delivery_id"] = delivery_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json_safe(
            json.dumps({key: redact(value, self.secrets) for key, value in entry.items()}, ensure_ascii=False)
        )


def configure(secrets: Iterable[str], json_lines: bool = False) -> None:
    """Log INFO and up to stderr (a process of ours with no handler yet), and redact every handler."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT)
    install(secrets, json_lines)


def install(
    secrets: Iterable[str], json_lines: bool = False, loggers: Iterable[str] = ("", "gunicorn.error", "gunicorn.access")
) -> None:
    """Put a redacting (or JSON) formatter on every handler of these loggers (idempotent)."""
    secrets = list(secrets)
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            current = handler.formatter
            if isinstance(current, RedactingFormatter):
                current = current.inner
            handler.setFormatter(JsonFormatter(secrets) if json_lines else RedactingFormatter(current, secrets))
