"""Figures across the tables: what readiness and the console's first page are judged on."""

from __future__ import annotations

import time
from typing import Any

from ..types import DONE, FAILED, RETRYING, SKIPPED
from .database import Database
from .deliveries import Deliveries
from .rows import UNFINISHED
from .search import Search

ALIVE_WITHIN = 30.0  # seconds since its last heartbeat a worker counts as alive (it beats every 10 s)


class Figures:
    """Read-only summaries."""

    def __init__(self, database: Database, deliveries: Deliveries):
        self.database = database
        self.deliveries = deliveries

    def overview(self) -> dict[str, Any]:
        """The console's first page: deliveries by status, the oldest waiting, what was applied in
        the last hour, the deliveries that failed in the last day, and each worker's latest heartbeat."""
        now = time.time()
        figures: dict[str, Any] = dict(self.health())
        figures["counts"] = self.deliveries.counts()
        figures["applied_hour"] = self.deliveries.count(Search(statuses=(DONE, SKIPPED), changed_since=now - 3600))
        # what the failed tile counts (failed now), of the last 24 hours: a delivery replayed since is not
        figures["failed_day"] = self.deliveries.count(Search(status=FAILED, changed_since=now - 86400))
        figures["workers"] = [
            (row["worker"], float(row["beat_at"]))
            for row in self.database.query(
                "select worker, beat_at from heartbeats where beat_at > :since order by worker", {"since": now - 86400}
            )
        ]
        return figures

    def went_wrong_since(self, moment: float) -> bool:
        """Whether any delivery failed, or began to wait for a retry, since ``moment`` (read through
        the ``updated_at`` index: the recent rows only, however big the store)."""
        return bool(
            self.database.query(
                f"select 1 from deliveries where updated_at > :since and status in ('{FAILED}', '{RETRYING}') limit 1",
                {"since": moment},
            )
        )

    def last_beat(self) -> float | None:
        """When a worker last marked itself alive."""
        at = self.database.query("select max(beat_at) as at from heartbeats")[0]["at"]
        return None if at is None else float(at)

    def worker_alive(self) -> bool:
        """Whether a worker marked itself alive in the last ``ALIVE_WITHIN`` seconds."""
        return time.time() - (self.last_beat() or 0.0) < ALIVE_WITHIN

    def health(self) -> dict[str, float | int | None]:
        """What readiness is judged on: the latest worker heartbeat, the latest applied delivery,
        how many deliveries wait and since when (times in seconds since the epoch, or ``None``)."""
        beat = self.last_beat()
        applied = self.database.query(
            f"select max(updated_at) as at from deliveries where status in ('{DONE}', '{SKIPPED}')"
        )[0]["at"]
        waiting = self.database.query(
            f"select count(*) as n, min(created_at) as oldest from deliveries where status in {UNFINISHED}"
        )[0]
        return {
            "now": time.time(),
            "worker_beat": beat,
            "last_applied": applied,
            "waiting": int(waiting["n"]),
            "oldest_waiting": waiting["oldest"],
        }
