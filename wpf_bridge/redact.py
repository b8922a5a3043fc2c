"""Keeps secrets out of every log line: configured secrets, and secret-looking query parameters."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

_SECRET_PARAMS = re.compile(r"((?:access_key|password|pass|api_key|key|token)=)[^&\s\"']+", re.IGNORECASE)
MASK = "[redacted]"


def url(address: str) -> str:
    """A URL fit to print: its password, if any, masked (``postgres://user:[redacted]@host/db``)."""
    return re.sub(r"^([a-z]+://[^:/@]*:)[^@/]*@", r"\1" + MASK + "@", address)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return _SECRET_PARAMS.sub(r"\1" + MASK, text)


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter and scrubs the finished line, traceback included."""

    def __init__(self, inner: logging.Formatter | None, secrets: Iterable[str]):
        super().__init__()
        self.inner = inner or logging.Formatter()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not message.isprintable():  # a request path or a value from outside must not forge a second line
            record = logging.makeLogRecord({**record.__dict__, "msg": printable(message), "args": None})
        return _TERMINAL_CONTROLS.sub(_escaped, redact(self.inner.format(record), self.secrets))  # a traceback's too


def printable(text: str) -> str:
    """Control characters (newlines included) escaped, as Python writes them (``\\n``)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


#: What a terminal would act on, but a traceback's own line breaks and indents: C0, DEL and C1.
_TERMINAL_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escaped(found: re.Match) -> str:
    return printable(found.group())


def json_safe(line: str) -> str:
    """A JSON text with DEL and C1 controls written as ``\\u`` escapes (JSON escapes only C0):
    it decodes to the same value, and a terminal showing it acts on none of them."""
    return re.sub(r"[\x7f-\x9f]", lambda found: f"\\u{ord(found.group()):04x}", line)
