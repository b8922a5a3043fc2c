"""What the two HTTP clients share: one keep-alive session, timeouts, and error triage."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests

from .. import __version__
from ..errors import PermanentError, TransientError
from ..metrics import PEER_SECONDS, status_class

TIMEOUT = (5, 30)  # connect, read (seconds)
USER_AGENT = f"wpf-bridge/{__version__}"
_thread = threading.local()


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def send(session: requests.Session, peer: str, method: str, url: str, **kwargs) -> requests.Response:
    """Send one request; network failures become ``TransientError`` naming the peer, not the URL.

    The URL is left out of the message on purpose: query strings may carry an email address.
    """
    started = time.monotonic()
    status = None
    try:
        response = session.request(method, url, timeout=TIMEOUT, **kwargs)
        status = response.status_code
        return response
    except requests.ConnectTimeout:
        raise TransientError(
            f"{peer} cannot be reached: no connection within {TIMEOUT[0]} s (a firewall dropping it, or the "
            "wrong address)"
        ) from None
    except requests.Timeout:
        raise TransientError(f"{peer} did not answer within {TIMEOUT[1]} s") from None
    except requests.exceptions.SSLError as exc:  # configuration: retrying for a day would not fix it
        raise PermanentError(_tls_failure(peer, str(exc)), "tls") from None
    except requests.ConnectionError as exc:
        raise TransientError(f"{peer} cannot be reached: {_why_unreachable(str(exc))}") from None
    except requests.RequestException as exc:
        raise PermanentError(f"{peer} request failed: {type(exc).__name__}") from None
    finally:
        seconds = time.monotonic() - started
        PEER_SECONDS.labels(peer.lower(), status_class(status)).observe(seconds)
        calls = getattr(_thread, "calls", None)
        if calls is not None:
            route = (kwargs.get("params") or {}).get("rest_route") or urlsplit(url).path  # WordPress: ?rest_route=
            calls.append(f"{peer} {method} {route} {status or 'no answer'} {seconds:.3f} s")


def _tls_failure(peer: str, error: str) -> str:
    if re.search(
        r"wrong version number|record layer failure|unknown protocol|http request|UNEXPECTED_EOF|EOF occurred",
        error,
        re.IGNORECASE,
    ):
        return (
            f"{peer}'s TLS handshake failed: the port does not speak TLS (plain HTTP?); use http://, or the HTTPS port"
        )
    reason = re.search(r"certificate verify failed: ([^(\)']+)", error)
    return (
        f"{peer}'s TLS certificate does not verify ({reason.group(1).strip() if reason else 'TLS error'}): "
        "install a valid certificate, or use the address the certificate is for"
    )


#: What a failed connection's error text says, and the cause in words (never the URL: it may hold an email).
_UNREACHABLE = (
    (r"Connection refused", "the connection was refused (nothing listens on that port)"),
    (
        r"Name or service not known|nodename nor servname|Temporary failure in name resolution|NameResolution|"
        r"No address associated",
        "its host name does not resolve (check the address for typos)",
    ),
    (r"Network is unreachable|No route to host", "no network route to it"),
    (r"Connection reset|RemoteDisconnected|Connection aborted", "it closed the connection without answering"),
)


def _why_unreachable(error: str) -> str:
    return next((why for pattern, why in _UNREACHABLE if re.search(pattern, error)), "the connection failed")


def record_calls() -> list[str]:
    """Start listing the requests this thread sends (peer, method, path, status, seconds; never the
    query string, which may carry an email), for a delivery's history."""
    _thread.calls = []
    return _thread.calls


@contextmanager
def calls_apart() -> Iterator[list[str]]:
    """List the requests sent inside the block apart from this thread's own list: a request sent
    for a batch of deliveries belongs to each of their histories."""
    saved = getattr(_thread, "calls", None)
    _thread.calls = []
    try:
        yield _thread.calls
    finally:
        _thread.calls = saved


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (either form), if there is one."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def json_or_none(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return None


class RateLimiter:
    """A token bucket shared by a process's threads: at most ``rate`` requests a second on average,
    ``burst`` at once. ``acquire`` waits for a token; a peer's own 429 is handled by the retries."""

    def __init__(self, rate: float, burst: int | None = None):
        self.rate = rate
        self.capacity = float(burst or max(1, int(rate)))
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait:
            time.sleep(wait)  # the token is ours already; later callers queue behind it
