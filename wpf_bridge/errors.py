"""The two kinds of failure the worker tells apart: worth retrying, or not."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose. ``code`` is the peer's own error code
    (WordPress's ``existing_user_email``, Ortto's HTTP status...), kept in the delivery's history."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class TransientError(BridgeError):
    """The peer is down, slow or busy: the same delivery may succeed later.

    ``retry_after`` is the peer's own hint in seconds (Ortto's ``try-in-seconds``, ``Retry-After``).
    """

    def __init__(self, message: str, retry_after: float | None = None, code: str = ""):
        super().__init__(message, code)
        self.retry_after = retry_after


class PermanentError(BridgeError):
    """Retrying cannot help (bad data, missing plugin, refused field): the delivery fails."""


class ClaimLost(BridgeError):
    """The delivery's lease passed to another worker while this one ran (it froze, or was cut off
    from the store): this run writes nothing more, and the other worker's run stands."""
