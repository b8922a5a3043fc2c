"""Trends for the console's charts: deliveries per minute or hour by outcome, and the time from
arrival to applied (median and 95th percentile), over the last hour, day or week, from the store itself, so every
web process draws the same."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from ..types import DONE, FAILED, SKIPPED
from .database import Database

OUTCOMES = (DONE, SKIPPED, FAILED, "waiting")  # the bars' parts, bottom up ("waiting": not ended yet)


@dataclass
class Bucket:
    start: float  # the bucket's first second
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    p50: float | None = None  # seconds from arrival to applied (done or skipped), of those that arrived in it
    p95: float | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Trends:
    def __init__(self, database: Database):
        self.database = database

    def buckets(self, span: float, width: float) -> list[Bucket]:
        """The last ``span`` seconds in buckets of ``width`` seconds, oldest first, each counting the
        deliveries that arrived in it by what became of them."""
        now = time.time()  # as the overview's other figures: a transaction would take SQLite's write lock
        end = (now // width + 1) * width  # buckets on whole minutes or hours: the last holds now
        count = int(span // width)
        start = end - width * count
        buckets = [Bucket(start + n * width) for n in range(count)]
        rows = self.database.query(
            "select created_at, updated_at, status from deliveries where created_at >= :start",
            {"start": start},
        )
        durations: dict[int, list[float]] = {}
        for row in rows:
            n = min(int((float(row["created_at"]) - start) // width), len(buckets) - 1)
            status = row["status"] if row["status"] in (DONE, SKIPPED, FAILED) else "waiting"
            buckets[n].counts[status] += 1
            if status in (DONE, SKIPPED):
                durations.setdefault(n, []).append(max(0.0, float(row["updated_at"]) - float(row["created_at"])))
        for n, seconds in durations.items():
            buckets[n].p50 = statistics.median(seconds)
            buckets[n].p95 = (
                statistics.quantiles(seconds, n=20, method="inclusive")[18] if len(seconds) > 1 else seconds[0]
            )
        return buckets
