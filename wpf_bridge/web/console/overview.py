"""What the overview page adds to the store's figures: how far behind WordPress's outbox is, and the
latest set-up check, which a worker runs (``wpf-bridge check``'s lines, stored), asked for again
when it is a minute old, on demand, or at once when a delivery went wrong after a check passed."""

from __future__ import annotations

from dataclasses import dataclass

from ...store import Store
from ...store.checks import CheckResult
from ...store.outbound import BEHIND, OLDEST, PULLED

CHECK_EVERY = 60.0  # seconds after which showing the check asks a worker for a new one
CONTRADICTED_AFTER = 5.0  # the same, once a delivery failed or will retry after the check passed


@dataclass(frozen=True)
class CheckView:
    result: CheckResult | None  # the latest finished check, the same on every web process
    waiting_since: float | None  # a check asked for that no worker has finished yet
    worker_alive: bool  # whether any worker will take it


@dataclass(frozen=True)
class OutboxView:
    behind: float  # changes waiting in WordPress's outbox at the last pull
    oldest: float  # when the oldest of them was made (0: none)
    pulled: float  # when a worker last pulled


def outbox_view(store: Store) -> OutboxView | None:
    """How far behind WordPress's outbox is (WordPress -> Ortto); ``None`` when no worker has pulled it."""
    behind, oldest, pulled = (store.marks.get(name) for name in (BEHIND, OLDEST, PULLED))
    return None if pulled is None else OutboxView(behind or 0.0, oldest or 0.0, pulled)


def check_view(store: Store, who: str, again: bool = False) -> CheckView:
    """The check to show; asks a worker for a new one when it is stale (``again``: now). "All
    checks passed" stands for a minute only while no delivery has gone wrong since."""
    latest = store.checks.latest()
    contradicted = latest is not None and not latest.problems and store.figures.went_wrong_since(latest.at)
    store.checks.ask(who, 0.0 if again else CONTRADICTED_AFTER if contradicted else CHECK_EVERY)
    return CheckView(latest, store.checks.waiting_since(), store.figures.worker_alive())  # asking finishes none
