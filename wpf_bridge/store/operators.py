"""What operators do to deliveries (replays), and the record of what they did.

A bulk replay is recorded by the web process with its search and done by a worker
(``take_replay``, ``replay_chunk``), which stores its progress in the same row the console shows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from ..types import FAILED, QUEUED, RETRYING, Attempt
from .database import Database
from .history import record
from .search import Search


@dataclass(frozen=True)
class Replay:
    """A bulk replay the console asked for, as a worker takes it."""

    action_id: str
    who: str
    search: Search
    asked_at: float  # deliveries that changed since are not replayed (by the database's clock)


class Operators:
    """Replays, one or matching a search, and the operator audit."""

    def __init__(self, database: Database):
        self.database = database

    def requeue(self, delivery_id: str, who: str = "an operator") -> bool:
        """Make a failed delivery, or one waiting for a retry, runnable now with a fresh retry
        horizon; ``False`` if it is neither. Its history keeps every earlier attempt, and gains the replay."""
        with self.database.transaction() as tx:
            return self._requeue(tx, [delivery_id], who, self.database.now(tx)) == 1

    def take_replay(self, owner: str, lease_seconds: float) -> Replay | None:
        """Take the oldest bulk replay the console asked for that no live worker holds (a worker
        that died leaves it to the next, which carries on where it stopped)."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            rows = tx.execute(
                "select id, who, search, at from operator_actions where search is not null and finished_at is null"
                " and (lease_until is null or lease_until < :now) order by at limit 1" + self.database.skip_locked,
                {"now": now},
            )
            if not rows:
                return None
            tx.execute(
                "update operator_actions set lease_owner = :owner, lease_until = :until where id = :id",
                {"owner": owner, "until": now + lease_seconds, "id": rows[0]["id"]},
            )
        row = rows[0]
        return Replay(row["id"], row["who"], Search.from_json(row["search"]), float(row["at"]))

    def replay_chunk(
        self, taken: Replay, owner: str, lease_seconds: float, chunk: int = 200
    ) -> tuple[int, bool] | None:
        """Replay the next ``chunk`` failed or retrying deliveries matching the request's search
        that last changed before it was asked for, in one transaction that renews the claim on the
        request and adds to its progress: each delivery is replayed whole or not at all, and once.
        How many, and whether that was the last chunk; ``None`` (nothing written) when another
        worker has taken the request over."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            tx.execute(
                "update operator_actions set lease_until = :until where id = :id and lease_owner = :owner",
                {"until": now + lease_seconds, "id": taken.action_id, "owner": owner},
            )
            if tx.rowcount != 1:
                return None
            where, params = replace(taken.search, replayable=True).where()
            rows = tx.execute(
                f"select id from deliveries where {where} and updated_at < :asked order by created_at limit :chunk",
                {**params, "asked": taken.asked_at, "chunk": chunk},
            )
            count = self._requeue(tx, [row["id"] for row in rows], taken.who, now)
            last = len(rows) < chunk
            tx.execute(
                "update operator_actions set done = done + :count, updated_at = :now, finished_at = :finished,"
                " lease_until = :lease where id = :id",
                {
                    "count": count,
                    "now": now,
                    "finished": now if last else None,
                    "lease": None if last else now + lease_seconds,
                    "id": taken.action_id,
                },
            )
            return count, last

    @staticmethod
    def _requeue(tx: Any, ids: list[str], who: str, now: float) -> int:
        replayed = []
        for delivery_id in ids:
            tx.execute(
                "update deliveries set status = :queued, attempts = 0, result = 'replayed', retry_since = :now,"
                f" run_after = :now, updated_at = :now where id = :id and status in ('{FAILED}', '{RETRYING}')",
                {"queued": QUEUED, "now": now, "id": delivery_id},
            )
            if tx.rowcount == 1:
                replayed.append(delivery_id)
        record(tx, [(delivery_id, Attempt(now, "replay", QUEUED, f"replayed by {who}")) for delivery_id in replayed])
        return len(replayed)

    def start_action(self, who: str, what: str, matched: int = 0, replay: Search | None = None) -> str:
        """Record what an operator did; with ``replay``, what they asked a worker to do: replay
        every failed or retrying delivery matching that search (see ``take_replay``)."""
        action_id = uuid.uuid4().hex
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            tx.execute(
                "insert into operator_actions (id, at, who, what, matched, done, finished_at, updated_at, search)"
                " values (:id, :now, :who, :what, :matched, :done, :finished, :now, :search)",
                {
                    "id": action_id,
                    "now": now,
                    "who": who[:100],
                    "what": what[:500],
                    "matched": matched,
                    "done": 0 if replay else matched,
                    "finished": None if replay else now,
                    "search": replay.to_json() if replay else None,
                },
            )
        return action_id

    def operator_actions(self, limit: int = 50) -> list[dict[str, Any]]:
        """What operators did, newest first."""
        return self.database.query("select * from operator_actions order by at desc limit :limit", {"limit": limit})

    def operator_action(self, action_id: str) -> dict[str, Any] | None:
        rows = self.database.query("select * from operator_actions where id = :id", {"id": action_id})
        return rows[0] if rows else None
