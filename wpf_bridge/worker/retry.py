"""When to try a peer again: exponential backoff with full jitter, the peer's own hint, and the
retry horizon after which a delivery fails."""

from __future__ import annotations

import random
import time

from ..errors import TransientError

FIRST_RETRY = 5.0  # seconds
MAX_RETRY_DELAY = 3600.0


def backoff(attempts: int) -> float:
    """About 5 s, 10 s, 20 s ... after the 1st, 2nd, 3rd attempt, capped at an hour; half to
    all of that at random, so that deliveries failed together do not retry together."""
    ceiling = min(MAX_RETRY_DELAY, FIRST_RETRY * 2 ** (attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


def retry_delay(attempts: int, exc: TransientError) -> float:
    """The backoff for this attempt, or longer if the peer asked for it (``try-in-seconds``, ``Retry-After``)."""
    return max(backoff(attempts), exc.retry_after or 0.0)


def past_horizon(retry_since: float, horizon: float) -> bool:
    """True once a delivery has been retried for ``horizon`` seconds (``WPF_RETRY_HOURS``)."""
    return time.time() - retry_since >= horizon
