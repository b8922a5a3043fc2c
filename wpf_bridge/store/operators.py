"""What operators do to deliveries (replays), and the record of what they did."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from ..types import FAILED, QUEUED, RETRYING, Attempt
from .database import Database
from .history import record
from .search import Search

REPLAY_PAUSE = 0.005  # seconds between a bulk replay's transactions


class Operators:
    """Replays, one or matching a search, and the operator audit."""

    def __init__(self, database: Database):
        self.database = database

    def requeue(self, delivery_id: str, who: str = "an operator") -> bool:
        """Make a failed delivery, or one waiting for a retry, runnable now with a fresh retry
        horizon; ``False`` if it is neither. Its history keeps every earlier attempt, and gains the replay."""
        with self.database.transaction() as tx:
            return self._requeue(tx, [delivery_id], who, self.database.now(tx)) == 1

    def requeue_matching(self, search: Search, who: str, action_id: str, chunk: int = 200) -> int:
        """Replay every failed or retrying delivery matching ``search`` that last changed before
        now, ``chunk`` at a time (each chunk one transaction, so each delivery is replayed whole
        or not at all), counting progress in the operator action ``action_id``."""
        with self.database.transaction() as tx:
            started = self.database.now(tx)  # the clock updated_at is written with
        done = 0
        replayable = replace(search, replayable=True)
        while True:
            with self.database.transaction() as tx:
                where, params = replayable.where()
                rows = tx.execute(
                    f"select id from deliveries where {where} and updated_at < :started"
                    " order by created_at limit :chunk",
                    {**params, "started": started, "chunk": chunk},
                )
                now = self.database.now(tx)
                done += self._requeue(tx, [row["id"] for row in rows], who, now)
                tx.execute(
                    "update operator_actions set done = :done, updated_at = :now,"
                    " finished_at = case when :last = 1 then :now else null end where id = :id",
                    {"done": done, "now": now, "last": int(len(rows) < chunk), "id": action_id},
                )
            if len(rows) < chunk:
                return done
            time.sleep(
                REPLAY_PAUSE
            )  # the process serves its other requests meanwhile (a gevent worker runs one at a time)

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

    def start_action(self, who: str, what: str, matched: int = 0, finished: bool = True) -> str:
        """Record what an operator did (or started: ``finished=False``, for a replay in the background)."""
        action_id = uuid.uuid4().hex
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            tx.execute(
                "insert into operator_actions (id, at, who, what, matched, done, finished_at, updated_at)"
                " values (:id, :now, :who, :what, :matched, :done, :finished, :now)",
                {
                    "id": action_id,
                    "now": now,
                    "who": who[:100],
                    "what": what[:500],
                    "matched": matched,
                    "done": matched if finished else 0,
                    "finished": now if finished else None,
                },
            )
        return action_id

    def operator_actions(self, limit: int = 50) -> list[dict[str, Any]]:
        """What operators did, newest first."""
        return self.database.query("select * from operator_actions order by at desc limit :limit", {"limit": limit})

    def operator_action(self, action_id: str) -> dict[str, Any] | None:
        rows = self.database.query("select * from operator_actions where id = :id", {"id": action_id})
        return rows[0] if rows else None
