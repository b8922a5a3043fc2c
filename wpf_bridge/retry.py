"""How long to wait before trying a peer again: exponential backoff with full jitter."""
from __future__ import annotations

import random

FIRST_RETRY = 5.0  # seconds
MAX_RETRY_DELAY = 3600.0


def backoff(attempts: int) -> float:
    """About 5 s, 10 s, 20 s ... after the 1st, 2nd, 3rd attempt, capped at an hour; half to
    all of that at random, so that deliveries failed together do not retry together."""
    ceiling = min(MAX_RETRY_DELAY, FIRST_RETRY * 2 ** (attempts - 1))
    return random.uniform(ceiling / 2, ceiling)
