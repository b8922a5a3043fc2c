"""Retention: finished deliveries, their history, old operator records and expired sessions deleted."""

from __future__ import annotations

from ..types import DONE, FAILED, SKIPPED
from .database import Database
from .previews import PREVIEWS_KEPT
from .sessions import prune_sessions

CHECKS_KEPT = 86400.0  # seconds a set-up check's result is kept


class Retention:
    """Deletes what is kept no longer; never an unfinished delivery."""

    def __init__(self, database: Database):
        self.database = database

    def prune(self, keep_seconds: float) -> int:
        """Delete finished deliveries (done, skipped, failed) last changed over ``keep_seconds`` ago,
        with their history and outbound changes, finished operator actions as old, set-up checks and previews over a day old and
        expired console sessions; return how many deliveries went.
        Unfinished ones are never deleted, however old."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            tx.execute(
                f"delete from deliveries where status in ('{DONE}', '{SKIPPED}', '{FAILED}') and updated_at < :before",
                {"before": now - keep_seconds},
            )
            pruned = tx.rowcount
            if pruned:  # deliveries first, then attempts: the order every transaction keeps
                for table, column in (("attempts", "delivery_id"), ("outbound_changes", "delivery_id")):
                    tx.execute(
                        f"delete from {table} where not exists (select 1 from deliveries where id = {table}.{column})"
                    )
            tx.execute(
                "delete from operator_actions where at < :before and finished_at is not null",
                {"before": now - keep_seconds},
            )
            tx.execute("delete from checks where asked_at < :before", {"before": now - CHECKS_KEPT})
            tx.execute("delete from previews where asked_at < :before", {"before": now - PREVIEWS_KEPT})
            prune_sessions(tx)
            return pruned
