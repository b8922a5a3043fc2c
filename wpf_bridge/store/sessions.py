"""Console sessions, kept in the store so that every web process and dyno accepts the same one,
and ending one ends every copy of its cookie (a signed cookie alone stays valid wherever it was
copied to until it expires). The cookie carries a random id; the table holds only its hash, so
whoever reads the table gets no id to sign in with."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from .database import Database


@dataclass(frozen=True)
class ConsoleSession:
    who: str  # the name given at sign-in
    client: str  # the address it came from
    password: str  # the fingerprint of the console password it was opened with
    created_at: float
    expires_at: float


class Sessions:
    def __init__(self, database: Database):
        self.database = database

    def open(self, who: str, client: str, password: str, lifetime: float) -> tuple[str, ConsoleSession]:
        """Record a sign-in that lasts ``lifetime`` seconds; return the id its cookie carries, and the session."""
        session_id, now = secrets.token_urlsafe(32), time.time()
        opened = ConsoleSession(who, client, password, now, now + lifetime)
        with self.database.transaction() as tx:
            tx.execute(
                "insert into console_sessions (id, who, client, password, created_at, expires_at)"
                " values (:id, :who, :client, :password, :created_at, :expires_at)",
                {"id": _hashed(session_id), **asdict(opened)},
            )
        return session_id, opened

    def find(self, session_id: str) -> ConsoleSession | None:
        """The session with this id, unless it has ended or expired (by the web host's clock, as it was opened)."""
        rows = self.database.query(
            "select who, client, password, created_at, expires_at from console_sessions"
            " where id = :id and expires_at > :now",
            {"id": _hashed(session_id), "now": time.time()},
        )
        return ConsoleSession(**rows[0]) if rows else None

    def end(self, session_id: str) -> None:
        """Sign out: no copy of the cookie opens this session again."""
        with self.database.transaction() as tx:
            tx.execute("delete from console_sessions where id = :id", {"id": _hashed(session_id)})


def prune_sessions(tx: Any) -> None:
    """Delete expired sessions (with the store's other clean-up)."""
    tx.execute("delete from console_sessions where expires_at <= :now", {"now": time.time()})


def _hashed(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
