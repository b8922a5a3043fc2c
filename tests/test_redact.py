"""Secrets never reach a log line, tracebacks included."""
from __future__ import annotations

import io
import json
import logging
from contextlib import contextmanager

from wpf_bridge import logs


@contextmanager
def captured(name: str):
    """A logger of its own writing into a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_formatter_scrubs_secrets_and_secret_parameters():
    with captured("test-redact") as (logger, stream):
        logs.install(["app-pass-1234", "ortto-key-5678"], loggers=["test-redact"])
        logs.install(["app-pass-1234", "ortto-key-5678"], loggers=["test-redact"])  # idempotent
        logger.error("GET /?wpf_action=add&access_key=abcdef123456&x=1 password=hunter22 with app-pass-1234")
        try:
            raise ValueError("token ortto-key-5678")
        except ValueError:
            logger.exception("failed")
    text = stream.getvalue()
    for secret in ("abcdef123456", "hunter22", "app-pass-1234", "ortto-key-5678"):
        assert secret not in text
    assert "access_key=[redacted]&x=1" in text and "ValueError: token [redacted]" in text


def test_database_url_password_is_masked_and_kept_out_of_logs(env):
    from wpf_bridge.redact import url
    from wpf_bridge.settings import load_settings

    assert url("postgres://u1:s%40cret@db.example.com:5432/d1") == "postgres://u1:[redacted]@db.example.com:5432/d1"
    assert url("sqlite:///var/wpf-bridge.db") == "sqlite:///var/wpf-bridge.db"
    settings = load_settings({**env, "DATABASE_URL": "postgres://u1:s%40cret@db.example.com:5432/d1"})
    assert "s@cret" in settings.secrets()


def test_json_lines_redact_secrets_that_json_would_escape():
    secret = 'pa"ss\\word-é'
    with captured("test-json-lines") as (logger, stream):
        logs.install([secret], json_lines=True, loggers=["test-json-lines"])
        with logs.log_context("d-123"):
            logger.warning("tried %s", secret)
        try:
            raise ValueError(f"boom {secret}")
        except ValueError:
            logger.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "tried [redacted]" and first["delivery_id"] == "d-123"
    assert "delivery_id" not in second and "ValueError: boom [redacted]" in second["exception"]
    assert "word" not in stream.getvalue()


def test_a_value_from_outside_cannot_forge_a_log_line():
    with captured("test-forged-lines") as (logger, stream):
        logs.install([], loggers=["test-forged-lines"])
        logger.warning("refused %s", "/console/x\n2026-11-28 16:00:00 INFO console sign-in by admin\r\t")
    assert stream.getvalue().count("\n") == 1
    assert "/console/x\\n2026-11-28 16:00:00 INFO console sign-in by admin\\r\\t" in stream.getvalue()


HOSTILE = "jane\x1b]0;OWNED\x07@evil.example\x9b2J\x7f"


def test_no_control_character_from_outside_reaches_a_log_line_raw_tracebacks_and_json_included():
    """Logs reach an operator's terminal (`make run`, journalctl): an email from Ortto carrying
    escape sequences, in a message or in an exception's text, is escaped in both formats; JSON
    lines still decode to the very same text."""
    for json_lines in (False, True):
        name = f"test-hostile-{json_lines}"
        with captured(name) as (logger, stream):
            logs.install([], json_lines=json_lines, loggers=[name])
            logger.warning("no user for %s", HOSTILE)
            try:
                raise ValueError(f"bad email {HOSTILE}")
            except ValueError:
                logger.exception("failed")
        written = stream.getvalue()
        assert not any(c in written for c in "\x1b\x07\x9b\x7f"), (json_lines, written)
        if json_lines:
            first, second = (json.loads(line) for line in written.splitlines())
            assert first["message"] == f"no user for {HOSTILE}" and f"ValueError: bad email {HOSTILE}" in second["exception"]
        else:
            assert "jane\\x1b]0;OWNED\\x07@evil.example\\x9b2J\\x7f" in written and "Traceback" in written
