"""Times one run (of an action, or of a password push), lists the requests it made, and counts
its outcome in the Prometheus figures."""

from __future__ import annotations

import time

from ..clients.http import record_calls
from ..metrics import ATTEMPT_SECONDS, ATTEMPTS
from ..types import Run


class Timer:
    def __init__(self, action: str, calls: list[str] | None = None):
        """``calls``: where the run's requests are listed; by default, every request this thread sends from now."""
        self.label = action.replace(" ", "_")
        self.calls = record_calls() if calls is None else calls
        self.started = time.monotonic()

    def stop(self, outcome: str, deliveries: int = 1) -> Run:
        """The run's time and requests, for the history; its outcome counted once per delivery."""
        seconds = time.monotonic() - self.started
        ATTEMPT_SECONDS.labels(self.label).observe(seconds)
        self.count(outcome, deliveries)
        return Run(seconds, list(self.calls))

    def count(self, outcome: str, deliveries: int) -> None:
        if deliveries:
            ATTEMPTS.labels(self.label, outcome).inc(deliveries)
