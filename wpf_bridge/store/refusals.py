"""Refused webhooks, counted by reason, and the latest ones one by one, for the console."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .database import Database

RECENT_REFUSALS = 200  # refused webhooks kept one by one (time, reason, client) for the console


class Refusals:
    """Counts the web processes flush, and what the console reads."""

    def __init__(self, database: Database):
        self.database = database

    def add(self, counts: dict[str, tuple[int, float]], recent: Sequence[tuple[float, int, str, str]] = ()) -> None:
        """Add refused webhooks by reason (which parameter, which rule; never the value sent):
        how many, and when the last one came; and keep the ``RECENT_REFUSALS`` latest one by one
        (time, HTTP status, reason, client address)."""
        with self.database.transaction() as tx:
            for reason, (count, last) in counts.items():
                tx.execute(
                    "insert into refusals (reason, count, last_at) values (:reason, :count, :last) on conflict (reason)"
                    " do update set count = refusals.count + :count, last_at = case when refusals.last_at > :last then refusals.last_at else :last end",
                    {"reason": reason[:200], "count": count, "last": last},
                )
            for at, status, reason, client in recent[-RECENT_REFUSALS:]:
                tx.execute(
                    "insert into refused_recent (at, status, reason, client) values (:at, :status, :reason, :client)",
                    {"at": at, "status": status, "reason": reason[:200], "client": client[:64]},
                )
            if recent:
                tx.execute(
                    "delete from refused_recent where at < (select at from refused_recent order by at desc"
                    " limit 1 offset :keep)",
                    {"keep": RECENT_REFUSALS - 1},
                )

    def by_reason(self) -> list[tuple[str, int, float]]:
        """(reason, how many, last time) for every kind of refused webhook, most frequent first."""
        rows = self.database.query("select reason, count, last_at from refusals order by count desc, reason")
        return [(row["reason"], int(row["count"]), float(row["last_at"])) for row in rows]

    def recent(self) -> list[dict[str, Any]]:
        """The latest refused webhooks, newest first: at, status, reason, client."""
        return self.database.query(
            "select at, status, reason, client from refused_recent order by at desc limit :n", {"n": RECENT_REFUSALS}
        )
