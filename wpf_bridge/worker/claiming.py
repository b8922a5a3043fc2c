"""Claims a group of deliveries, and lets a small one fill for a bounded moment while the queue grows.

A group's WordPress requests cost about as much for fifty deliveries as for one, but a burst of
webhooks trickles in: a thread that took the first few at once would send many small groups. So a
group smaller than a batch looks again a few times within ``batch_fill_seconds`` and takes what
has arrived since; it goes as soon as a look finds nothing new (the burst is over, or there was
none), so a lone webhook waits one look, and none waits longer than the moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..settings import Settings
from ..store import Store
from ..types import Delivery

LOOKS = 4  # looks for arrivals within the moment: a lone webhook waits a quarter of it


def claim_group(
    store: Store,
    settings: Settings,
    owner: str,
    wait: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Delivery]:
    """The oldest runnable deliveries, up to ``WPF_BATCH_SIZE``, one per person in arrival order,
    held by ``owner``; filled with those that arrive while the queue grows, for at most the moment."""
    limit, lease = settings.batch_size, settings.lease_seconds
    group = store.claims.claim(lease, owner, limit=limit)
    step = settings.batch_fill_seconds / LOOKS
    deadline = clock() + settings.batch_fill_seconds
    while group and len(group) < limit and step > 0 and clock() + step <= deadline:
        wait(step)
        more = store.claims.claim(lease, owner, limit=limit - len(group))
        if not more:
            break
        group.extend(more)
    return group
