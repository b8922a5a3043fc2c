"""What the two HTTP clients share: one keep-alive session, timeouts, and error triage."""
from __future__ import annotations

from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

import requests

from . import __version__
from .errors import PermanentError, TransientError

TIMEOUT = (5, 30)  # connect, read (seconds)
USER_AGENT = f"wpf-bridge/{__version__}"


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def send(session: requests.Session, peer: str, method: str, url: str, **kwargs) -> requests.Response:
    """Send one request; network failures become ``TransientError`` naming the peer, not the URL.

    The URL is left out of the message on purpose: query strings may carry an email address.
    """
    try:
        return session.request(method, url, timeout=TIMEOUT, **kwargs)
    except requests.Timeout:
        raise TransientError(f"{peer} did not answer within {TIMEOUT[1]} s") from None
    except requests.ConnectionError:
        raise TransientError(f"{peer} cannot be reached") from None
    except requests.RequestException as exc:
        raise PermanentError(f"{peer} request failed: {type(exc).__name__}") from None


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
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def json_or_none(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return None
