"""Secrets never reach a log line, tracebacks included."""
from __future__ import annotations

import io
import logging

from wpf_bridge import redact


def test_formatter_scrubs_secrets_and_secret_parameters():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test-redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        redact.install(["app-pass-1234", "ortto-key-5678"], loggers=["test-redact"])
        redact.install(["app-pass-1234", "ortto-key-5678"], loggers=["test-redact"])  # idempotent
        logger.error("GET /?wpf_action=add&access_key=abcdef123456&x=1 password=hunter22 with app-pass-1234")
        try:
            raise ValueError("token ortto-key-5678")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
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
