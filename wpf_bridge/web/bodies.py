"""Whole request bodies, read within a deadline before the app sees them.

The web process is often reached directly, with no buffering proxy in front (``0.0.0.0:$PORT``).
It runs gunicorn's gevent workers, so a connection costs a greenlet, not a worker: clients that
trickle or stall cannot take every worker, as they could take the few sync workers. What such a
client still holds is its connection, for as long as it keeps sending; so each body is read whole
(at most the app's limit) within ``BODY_SECONDS``, else answered 408 and closed. Headers have
their own deadline in gunicorn (its ``keepalive`` seconds).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

from gevent import Timeout

BODY_SECONDS = 10.0  # Ortto sends a webhook's body (a few hundred bytes) at once
log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable], Iterable[bytes]]


class WholeBodies:
    """WSGI middleware: the app gets a body that has fully arrived, read from memory."""

    def __init__(self, app: WSGIApp, limit: int, seconds: float = BODY_SECONDS):
        self.app = app
        self.limit = limit
        self.seconds = seconds

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked and (not length.isdigit() or int(length) == 0 or int(length) > self.limit):
            return self.app(environ, start_response)  # nothing to wait for, or refused unread (413)
        try:
            with Timeout(self.seconds):
                body = environ["wsgi.input"].read(self.limit + 1)
        except Timeout:
            log.warning(
                "request from %s: body not received within %.0f s; answered 408",
                environ.get("REMOTE_ADDR", "?"),
                self.seconds,
            )
            start_response("408 Request Timeout", [("Content-Type", "application/json"), ("Connection", "close")])
            return [b'{"success": false, "error": "the request body did not arrive in time"}\n']
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))  # a chunked body over the limit is then refused (413)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        return self.app(environ, start_response)
