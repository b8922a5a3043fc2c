"""Wrong access keys counted per client address and in total, so guessing is slowed down."""

from __future__ import annotations

import time
from typing import Any

from .database import Database

MAX_KEY_CLIENTS = 10_000  # client addresses whose wrong keys are counted at once


class ClientBlocked(Exception):
    """The client sent too many wrong access keys; it may try again in ``wait`` seconds."""

    def __init__(self, wait: float):
        super().__init__(f"blocked for {wait:.0f} s")
        self.wait = wait


class Limits:
    """Counts of wrong keys (the web process and the console's sign-in)."""

    def __init__(self, database: Database):
        self.database = database

    def key_failure(self, client: str, window: float, *, total: bool = False) -> int:
        """Count one wrong access key from ``client``; return its failures in the current window.

        Rows whose window has passed are deleted in the same write, and beyond ``MAX_KEY_CLIENTS``
        the oldest go too, so guessing from many addresses cannot grow the table without end.
        A ``total`` (all clients together, such as the console's) is a table of its own, out of
        that eviction: the many addresses it counts could otherwise push it out."""
        now = time.time()
        table = _key_table(total)
        with self.database.transaction() as tx:
            if not total:
                tx.execute("delete from key_failures where window_start <= :since", {"since": now - window})
                tx.execute(
                    "delete from key_failures where window_start <= (select window_start from key_failures"
                    " order by window_start desc limit 1 offset :keep)",
                    {"keep": MAX_KEY_CLIENTS - 1},
                )
            tx.execute(
                f"insert into {table} (client, window_start, failures) values (:client, :now, 1)"
                " on conflict (client) do update set"
                f" failures = case when {table}.window_start > :since then {table}.failures + 1 else 1 end,"
                f" window_start = case when {table}.window_start > :since then {table}.window_start else :now end",
                {"client": client, "now": now, "since": now - window},
            )
            rows = tx.execute(f"select failures from {table} where client = :client", {"client": client})
        return int(rows[0]["failures"])

    def key_refund(self, client: str, *, total: bool = False) -> None:
        """Take back a try counted by ``key_failure`` before it was judged, once it proved right."""
        with self.database.transaction() as tx:
            tx.execute(
                f"update {_key_table(total)} set failures = failures - 1 where client = :client and failures > 0",
                {"client": client},
            )

    def key_block(self, client: str, window: float, limit: int, *, total: bool = False) -> float:
        """Seconds until ``client`` (or the ``total``, see ``key_failure``) may try keys again (0 when it is not blocked)."""
        rows = self.database.query(
            f"select window_start, failures from {_key_table(total)} where client = :client",
            {"client": client},
        )
        return blocked_for(rows, window, limit)


def _key_table(total: bool) -> str:
    """Where wrong keys are counted: per client (evicted beyond ``MAX_KEY_CLIENTS``), or in total."""
    return "key_totals" if total else "key_failures"


def blocked_for(rows: list[dict[str, Any]], window: float, limit: int) -> float:
    """Seconds a client's wrong-key row (if any) still blocks it: ``limit`` failures within ``window``."""
    if not rows or rows[0]["failures"] < limit:
        return 0.0
    return max(0.0, rows[0]["window_start"] + window - time.time())
