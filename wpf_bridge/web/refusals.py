"""Refused webhooks: each logged with its reason and who it was for, and counted in the store.

Counts gather in the process and are written about once per ``FLUSH_SECONDS`` (on a timer, and
when the process exits), so a flood of refused requests costs the store one small write a
second, not one per request; each reason keeps the time it was last seen.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time

from ..store import RECENT_REFUSALS, Store, StoreUnavailable

FLUSH_SECONDS = 1.0
log = logging.getLogger(__name__)


class Refusals:
    def __init__(self, store: Store):
        self.store = store
        self._pending: dict[str, tuple[int, float]] = {}  # reason: (count, last seen)
        self._recent: list[tuple[float, int, str, str]] = []  # (time, status, reason, client), the latest few
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        atexit.register(self.flush)  # a web process that stops writes what it has not yet

    def record(self, status: int, reason: str, client: str, who: str) -> None:
        """Log one refused webhook (``reason``: which parameter, which rule) and count it."""
        log.warning("refused webhook: %d %s; from %s, for %s", status, reason, client, who or "nobody named")
        with self._lock:
            count, _ = self._pending.get(reason, (0, 0.0))
            self._pending[reason] = (count + 1, time.time())
            self._recent = [*self._recent[-(RECENT_REFUSALS - 1) :], (time.time(), status, reason, client)]
            if self._timer is None:
                self._timer = threading.Timer(FLUSH_SECONDS, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write the counts not yet in the store."""
        with self._lock:
            counts, recent, self._pending, self._recent, self._timer = self._pending, self._recent, {}, [], None
        if not counts:
            return
        try:
            self.store.refusals.add(counts, recent)
        except StoreUnavailable as exc:  # the counts are lost; the refusals were logged
            log.error("%s", exc)


def named(*values: object) -> str:
    """Who a request says it is for (contact id, email), fit for one log line: the values come
    from whoever sent it, so control characters go and the length is capped."""
    text = " ".join(str(v) for v in values if v not in (None, ""))
    return "".join(c if c.isprintable() else "?" for c in text)[:120]
