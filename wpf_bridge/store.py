"""Delivery records: what arrived, what became of it. Committed before the webhook is answered."""
from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .errors import TransientError

QUEUED, RUNNING, RETRYING, DONE, SKIPPED, FAILED = "queued", "running", "retrying", "done", "skipped", "failed"
BUSY_TIMEOUT = 10.0  # seconds a write waits for another writer before the store counts as unavailable

_SCHEMA = """
create table if not exists deliveries (
    id text primary key,
    action text not null,
    contact_id text,
    email text,
    role text,
    send_notification integer not null default 0,
    status text not null,
    attempts integer not null default 0,
    result text,
    user_id integer,
    secret text,
    created_at real not null,
    updated_at real not null,
    retry_since real not null,
    lease_until real,
    dedupe_key text
);
create index if not exists deliveries_dedupe on deliveries (dedupe_key, created_at);
create index if not exists deliveries_contact on deliveries (contact_id, status);
create index if not exists deliveries_email on deliveries (email, status);
create table if not exists key_failures (
    client text primary key,
    window_start real not null,
    failures integer not null
);
create index if not exists deliveries_running on deliveries (status, lease_until);
create index if not exists deliveries_created on deliveries (created_at);
"""


class StoreUnavailable(TransientError):
    """The database cannot be written: the webhook answers 503 so that Ortto retries."""


@dataclass(frozen=True)
class Delivery:
    id: str
    action: str
    contact_id: str | None
    email: str | None
    role: str | None
    send_notification: bool
    status: str = QUEUED
    attempts: int = 0
    result: str | None = None
    user_id: int | None = None
    secret: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    retry_since: float = 0.0  # arrival, or the last replay: the retry horizon counts from here
    lease_until: float | None = None  # while running: after this, a crashed worker's delivery is taken over
    dedupe_key: str | None = None  # what identifies a redelivery of the same webhook call


def sqlite_path(database_url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (SQLAlchemy's spelling)."""
    return Path(database_url.removeprefix("sqlite:///"))


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                db.execute(statement)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("pragma journal_mode=wal")
            db.execute("pragma synchronous=full")  # a 202 means the delivery is on disk
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``begin immediate`` ... ``commit``; any sqlite failure becomes ``StoreUnavailable``."""
        db = None
        try:
            db = self._db()
            db.execute("begin immediate")
            yield db
            db.execute("commit")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"delivery store unavailable: {exc}") from None
        finally:
            if db is not None and db.in_transaction:
                db.execute("rollback")

    def add(
        self,
        action: str,
        contact_id: str | None,
        email: str | None,
        role: str | None,
        send_notification: bool,
        *,
        dedupe_key: str | None = None,
        window: float = 0.0,
        then: Callable[[sqlite3.Connection, str], None] | None = None,
    ) -> tuple[Delivery, bool]:
        """Insert a delivery and return it with ``True``; ``then(db, delivery_id)`` runs in the same
        transaction (the queue uses it). If a delivery with ``dedupe_key`` arrived within ``window``
        seconds, that one is returned with ``False`` and nothing is written: the look-up and the
        insert share one write transaction, so simultaneous redeliveries cannot both pass."""
        with self._write() as db:
            now = time.time()  # under the write lock: created_at order is commit order, which claim relies on
            if dedupe_key is not None:
                row = db.execute(
                    "select * from deliveries where dedupe_key = ? and created_at > ? order by created_at limit 1",
                    (dedupe_key, now - window),
                ).fetchone()
                if row is not None:
                    return _delivery(row), False
            delivery = Delivery(uuid.uuid4().hex, action, contact_id, email, role, send_notification,
                                created_at=now, updated_at=now, retry_since=now, dedupe_key=dedupe_key)
            db.execute(
                "insert into deliveries (id, action, contact_id, email, role, send_notification, status,"
                " created_at, updated_at, retry_since, dedupe_key) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (delivery.id, action, contact_id, email, role, int(send_notification), QUEUED, now, now, now, dedupe_key),
            )
            if then is not None:
                then(db, delivery.id)
        return delivery, True

    def get(self, delivery_id: str) -> Delivery | None:
        row = self._db().execute("select * from deliveries where id = ?", (delivery_id,)).fetchone()
        return _delivery(row) if row else None

    def recent(self, limit: int = 20) -> list[Delivery]:
        rows = self._db().execute("select * from deliveries order by created_at desc limit ?", (limit,)).fetchall()
        return [_delivery(row) for row in rows]

    def claim(self, delivery_id: str, lease_seconds: float) -> Delivery | None:
        """Take a delivery to run it: only one worker holds it until it ends or its lease runs out,
        and only once every earlier unfinished delivery for the same contact id or email has ended
        (one contact at a time, in arrival order).

        Returns the delivery with ``attempts`` counted, or ``None`` when it has ended, another
        worker holds it, or it waits behind an earlier one (``waiting`` tells which).
        """
        now = time.time()
        with self._write() as db:
            claimed = db.execute(
                "update deliveries set status = ?, lease_until = ?, attempts = attempts + 1, updated_at = ?"
                " where id = ? and (status in (?, ?) or (status = ? and lease_until < ?))"
                " and not exists (select 1 from deliveries earlier where earlier.status in (?, ?, ?)"
                "   and (earlier.created_at < deliveries.created_at"
                "        or (earlier.created_at = deliveries.created_at and earlier.id < deliveries.id))"
                "   and (earlier.contact_id = deliveries.contact_id or earlier.email = deliveries.email))",
                (RUNNING, now + lease_seconds, now, delivery_id, QUEUED, RETRYING, RUNNING, now, QUEUED, RETRYING, RUNNING),
            ).rowcount
            row = db.execute("select * from deliveries where id = ?", (delivery_id,)).fetchone() if claimed else None
        return _delivery(row) if row else None

    def waiting(self, delivery_id: str) -> bool:
        """True if the delivery is still to run (it waits behind an earlier one for the same person)."""
        row = self._db().execute("select status from deliveries where id = ?", (delivery_id,)).fetchone()
        return row is not None and row["status"] in (QUEUED, RETRYING)

    def release_expired(
        self, stale_after: float, then: Callable[[sqlite3.Connection, str], None] | None = None
    ) -> list[str]:
        """Deliveries a dead worker left behind: running past their lease, or queued and untouched
        for ``stale_after`` seconds (a worker killed between taking the queue entry and claiming
        it). Marks them queued, touched now, and returns their ids; ``then(db, delivery_id)`` runs
        for each in the same transaction (the queue re-enqueues them). A queue entry that was not
        lost after all is harmless: its claim finds the delivery ended or held."""
        now = time.time()
        with self._write() as db:
            rows = db.execute(
                "select id from deliveries where (status = ? and lease_until < ?) or (status = ? and updated_at < ?)",
                (RUNNING, now, QUEUED, now - stale_after),
            ).fetchall()
            ids = [row["id"] for row in rows]
            db.executemany(
                "update deliveries set status = ?, result = 'left behind by a stopped worker; queued again',"
                " updated_at = ? where id = ?",
                [(QUEUED, now, i) for i in ids],
            )
            for delivery_id in ids:
                if then is not None:
                    then(db, delivery_id)
        return ids

    def key_failure(self, client: str, window: float) -> int:
        """Count one wrong access key from ``client``; return its failures in the current window."""
        now = time.time()
        with self._write() as db:
            db.execute(
                "insert into key_failures (client, window_start, failures) values (?, ?, 1)"
                " on conflict (client) do update set"
                " failures = case when window_start > ? then failures + 1 else 1 end,"
                " window_start = case when window_start > ? then window_start else ? end",
                (client, now, now - window, now - window, now),
            )
            row = db.execute("select failures from key_failures where client = ?", (client,)).fetchone()
        return row["failures"]

    def key_block(self, client: str, window: float, limit: int) -> float:
        """Seconds until ``client`` may try keys again (0 when it is not blocked)."""
        row = self._db().execute("select window_start, failures from key_failures where client = ?", (client,)).fetchone()
        if row is None or row["failures"] < limit:
            return 0.0
        return max(0.0, row["window_start"] + window - time.time())

    def failed_ids(self) -> list[str]:
        rows = self._db().execute("select id from deliveries where status = ? order by created_at", (FAILED,)).fetchall()
        return [row["id"] for row in rows]

    def requeue(self, delivery_id: str, then: Callable[[sqlite3.Connection, str], None] | None = None) -> bool:
        """Make a failed delivery runnable again, with a fresh retry horizon; ``False`` if it is not
        failed. ``then(db, delivery_id)`` runs in the same transaction when it is requeued."""
        now = time.time()
        with self._write() as db:
            changed = db.execute(
                "update deliveries set status = ?, attempts = 0, result = 'replayed', retry_since = ?, updated_at = ?"
                " where id = ? and status = ?",
                (QUEUED, now, now, delivery_id, FAILED),
            ).rowcount == 1
            if changed and then is not None:
                then(db, delivery_id)
        return changed

    def update(self, delivery_id: str, **values: object) -> None:
        """Set columns of one delivery (``status``, ``result``, ``user_id``, ``secret``, ``attempts``)."""
        unknown = set(values) - {"status", "result", "user_id", "secret", "attempts"}
        if unknown:
            raise ValueError(f"not a delivery column: {sorted(unknown)}")
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._write() as db:
            db.execute(
                f"update deliveries set {columns}, updated_at = ? where id = ?",
                (*values.values(), time.time(), delivery_id),
            )


def _delivery(row: sqlite3.Row) -> Delivery:
    data = dict(row)
    data["send_notification"] = bool(data["send_notification"])
    return Delivery(**data)
