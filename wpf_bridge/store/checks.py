"""The set-up check, asked for by the console and run by a worker: every web process shows the
same latest result, and a slow WordPress holds no web worker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .asked import take_oldest
from .database import Database

PENDING_FOR = 120.0  # seconds a check asked for waits for a worker before another may be asked for


@dataclass(frozen=True)
class CheckResult:
    lines: list[tuple[str, str]]  # (ok | FAIL | note, text), already redacted
    problems: int
    at: float  # when it finished


class Checks:
    def __init__(self, database: Database):
        self.database = database

    def latest(self) -> CheckResult | None:
        """The newest finished check, if any."""
        rows = self.database.query(
            "select lines, problems, finished_at from checks where finished_at is not null"
            " order by finished_at desc limit 1"
        )
        if not rows:
            return None
        return CheckResult(
            [(kind, text) for kind, text in json.loads(rows[0]["lines"])],
            rows[0]["problems"],
            float(rows[0]["finished_at"]),
        )

    def waiting_since(self) -> float | None:
        """When the oldest check still waiting for a worker (or running) was asked for."""
        rows = self.database.query("select min(asked_at) as at from checks where finished_at is null")
        return None if rows[0]["at"] is None else float(rows[0]["at"])

    def ask(self, who: str, older_than: float) -> bool:
        """Ask a worker for a check, unless one is waiting (asked within ``PENDING_FOR`` s) or the
        latest finished less than ``older_than`` s ago; whether one was asked for. Most page
        views find one of those with a read and write nothing."""
        if self._busy(self.database.query, time.time(), older_than):
            return False
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            if self._busy(tx.execute, now, older_than):
                return False
            tx.execute(
                "insert into checks (id, asked_at, asked_by) values (:id, :now, :who)",
                {"id": uuid.uuid4().hex, "now": now, "who": who[:100]},
            )
            return True

    @staticmethod
    def _busy(run: Callable[[str, dict[str, Any]], list[dict[str, Any]]], now: float, older_than: float) -> bool:
        return bool(
            run(
                "select 1 from checks where (finished_at is null and asked_at > :pending)"
                " or finished_at > :fresh limit 1",
                {"pending": now - PENDING_FOR, "fresh": now - older_than},
            )
        )

    def take(self, owner: str, lease_seconds: float) -> str | None:
        """Take the oldest check waiting for a worker (or one whose worker died); its id."""
        row = take_oldest(self.database, "checks", owner, lease_seconds)
        return None if row is None else str(row["id"])

    def finish(self, check_id: str, owner: str, lines: list[tuple[str, str]], problems: int) -> None:
        """Keep a check's result (and answer every other check still waiting with it)."""
        with self.database.transaction() as tx:
            tx.execute(
                "update checks set finished_at = :now, problems = :problems, lines = :lines, lease_until = null"
                " where (id = :id and lease_owner = :owner) or (finished_at is null and lease_until is null)",
                {
                    "now": self.database.now(tx),
                    "problems": problems,
                    "lines": json.dumps(lines),
                    "id": check_id,
                    "owner": owner,
                },
            )
