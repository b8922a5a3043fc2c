"""Each delivery's history: every run, push and replay, with what it left the delivery as."""

from __future__ import annotations

from typing import Any

from ..types import Attempt, Run
from .database import Database, Transaction


class History:
    def __init__(self, database: Database):
        self.database = database

    def of(self, delivery_id: str) -> list[Attempt]:
        """Every recorded step of a delivery, oldest first."""
        rows = self.database.query(
            "select at, call, status, message, code, next_retry, duration, calls from attempts where delivery_id = :id"
            " order by at",
            {"id": delivery_id},
        )
        return [Attempt(**row) for row in rows]


def record(tx: Transaction, steps: list[tuple[str, Attempt]]) -> None:
    """Add steps to deliveries' histories, in the caller's transaction. Every transaction writes
    ``deliveries`` before ``attempts`` (and the schema is created in that order), so none waits on
    the other in a cycle."""
    for delivery_id, attempt in steps:
        tx.execute(
            "insert into attempts (delivery_id, at, call, status, code, message, next_retry, duration, calls)"
            " values (:delivery_id, :at, :call, :status, :code, :message, :next_retry, :duration, :calls)",
            {
                "delivery_id": delivery_id,
                "at": attempt.at,
                "call": attempt.call,
                "status": attempt.status,
                "code": attempt.code or "",
                "message": attempt.message,
                "next_retry": attempt.next_retry,
                "duration": attempt.duration,
                "calls": attempt.calls,
            },
        )


def timing(run: Run | None) -> dict[str, Any]:
    """A run's duration and requests, as an ``Attempt``'s fields."""
    return {"duration": run.duration, "calls": "\n".join(run.calls)} if run else {}
