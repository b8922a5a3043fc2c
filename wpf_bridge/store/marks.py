"""Marks shared by every process (when alerts last looked, say), and workers' heartbeats."""

from __future__ import annotations

from .database import Database


class Marks:
    """Named times moved by compare-and-set, so one process of many wins."""

    def __init__(self, database: Database):
        self.database = database

    def get(self, name: str) -> float | None:
        rows = self.database.query("select value from marks where name = :name", {"name": name})
        return float(rows[0]["value"]) if rows else None

    def move(self, name: str, old: float | None, new: float) -> bool:
        """Set a mark from ``old`` to ``new`` if nobody moved it meanwhile: one process of many wins."""
        with self.database.transaction() as tx:
            if old is None:
                tx.execute(
                    "insert into marks (name, value) values (:name, :new) on conflict (name) do nothing",
                    {"name": name, "new": new},
                )
            else:
                tx.execute(
                    "update marks set value = :new where name = :name and value = :old",
                    {"name": name, "new": new, "old": old},
                )
            return tx.rowcount == 1

    def set(self, values: dict[str, float]) -> None:
        """Set marks to these values, whoever set them last (figures a worker reports, like the outbox's lag)."""
        with self.database.transaction() as tx:
            for name, value in values.items():
                tx.execute(
                    "insert into marks (name, value) values (:name, :value)"
                    " on conflict (name) do update set value = :value",
                    {"name": name, "value": value},
                )

    def gone(self, worker: str) -> None:
        """A worker process stops: it is alive no more."""
        with self.database.transaction() as tx:
            tx.execute("delete from heartbeats where worker = :worker", {"worker": worker})

    def beat(self, worker: str) -> None:
        """A worker process says it is alive."""
        with self.database.transaction() as tx:
            tx.execute(
                "insert into heartbeats (worker, beat_at) values (:worker, :now)"
                " on conflict (worker) do update set beat_at = :now",
                {"worker": worker, "now": self.database.now(tx)},
            )
