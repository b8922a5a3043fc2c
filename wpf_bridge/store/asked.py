"""Work the console asks a worker for (a set-up check, a preview): a row per request, taken by one
worker under a lease, so a worker that dies leaves it to the next."""

from __future__ import annotations

from typing import Any

from .database import Database


def take_oldest(database: Database, table: str, owner: str, lease_seconds: float) -> dict[str, Any] | None:
    """Take the oldest unfinished request in ``table`` (``checks``, ``previews``) that no live
    worker holds; its row."""
    with database.transaction() as tx:
        now = database.now(tx)
        rows = tx.execute(
            f"select * from {table} where finished_at is null and (lease_until is null or lease_until < :now)"
            " order by asked_at limit 1" + database.skip_locked,
            {"now": now},
        )
        if not rows:
            return None
        tx.execute(
            f"update {table} set lease_owner = :owner, lease_until = :until where id = :id",
            {"owner": owner, "until": now + lease_seconds, "id": rows[0]["id"]},
        )
        return rows[0]
