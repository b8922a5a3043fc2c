"""Previews the console asks for ("what would add do to Jane?"): recorded by the web process,
worked out by a worker, which alone speaks to Ortto and WordPress, and kept for a day."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from .asked import take_oldest
from .database import Database

PREVIEWS_KEPT = 86400.0  # seconds a preview (which names a person and their values) is kept


@dataclass(frozen=True)
class Preview:
    id: str
    person: str  # an email or an Ortto contact id, as the operator typed it
    action: str  # add | update | update_tags
    role: str | None
    notify: bool
    asked_by: str
    asked_at: float
    finished_at: float | None
    lines: list[str] | None  # what the action would do, already redacted; None until a worker answers

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Preview:
        return cls(
            str(row["id"]),
            row["person"],
            row["action"],
            row["role"],
            bool(row["notify"]),
            row["asked_by"],
            float(row["asked_at"]),
            None if row["finished_at"] is None else float(row["finished_at"]),
            None if row["lines"] is None else list(json.loads(row["lines"])),
        )


class Previews:
    def __init__(self, database: Database):
        self.database = database

    def ask(self, asked_by: str, person: str, action: str, role: str | None, notify: bool) -> str:
        """Record a preview for a worker to work out; its id."""
        preview_id = uuid.uuid4().hex
        with self.database.transaction() as tx:
            tx.execute(
                "insert into previews (id, asked_at, asked_by, person, action, role, notify)"
                " values (:id, :now, :by, :person, :action, :role, :notify)",
                {
                    "id": preview_id,
                    "now": self.database.now(tx),
                    "by": asked_by[:100],
                    "person": person,
                    "action": action,
                    "role": role,
                    "notify": int(notify),
                },
            )
        return preview_id

    def take(self, owner: str, lease_seconds: float) -> Preview | None:
        """Take the oldest preview waiting for a worker (or one whose worker died)."""
        row = take_oldest(self.database, "previews", owner, lease_seconds)
        return None if row is None else Preview.from_row(row)

    def finish(self, preview_id: str, owner: str, lines: list[str]) -> None:
        """Keep what the preview found, unless another worker took it over meanwhile."""
        with self.database.transaction() as tx:
            tx.execute(
                "update previews set finished_at = :now, lines = :lines, lease_until = null"
                " where id = :id and lease_owner = :owner and finished_at is null",
                {"now": self.database.now(tx), "lines": json.dumps(lines), "id": preview_id, "owner": owner},
            )

    def get(self, preview_id: str) -> Preview | None:
        rows = self.database.query("select * from previews where id = :id", {"id": preview_id})
        return Preview.from_row(rows[0]) if rows else None

    def recent(self, limit: int = 10) -> list[Preview]:
        """The newest previews, for the page that asks for another."""
        rows = self.database.query("select * from previews order by asked_at desc limit :limit", {"limit": limit})
        return [Preview.from_row(row) for row in rows]
