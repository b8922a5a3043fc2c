"""Delivery records, which are also the queue: what arrived, when it may run, what became of it.

A delivery is committed before the webhook is answered, and workers claim the oldest runnable
row under a lease. Keeping the queue in the records themselves means there is no second entry to
lose or duplicate: a killed web process leaves a whole delivery or none, a killed worker's
delivery becomes claimable again when its lease ends, and a retry is just a later ``run_after``.
"""
from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import TransientError

QUEUED, RUNNING, RETRYING, DONE, SKIPPED, FAILED = "queued", "running", "retrying", "done", "skipped", "failed"
UNFINISHED = f"('{QUEUED}', '{RETRYING}', '{RUNNING}')"  # literal SQL, so the partial indexes apply
BUSY_TIMEOUT = 10.0  # seconds a write waits for another writer before the store counts as unavailable

_SCHEMA = f"""
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
    dedupe_key text,
    run_after real not null
);
create index if not exists deliveries_dedupe on deliveries (dedupe_key, created_at);
create index if not exists deliveries_created on deliveries (created_at);
create index if not exists deliveries_unfinished on deliveries (created_at, id) where status in {UNFINISHED};
create index if not exists deliveries_unfinished_contact on deliveries (contact_id, created_at) where status in {UNFINISHED};
create index if not exists deliveries_unfinished_email on deliveries (email, created_at) where status in {UNFINISHED};
create table if not exists key_failures (
    client text primary key,
    window_start real not null,
    failures integer not null
);
"""

_EARLIER = f"""
    select 1 from deliveries earlier
    where earlier.{{person}} = deliveries.{{person}} and earlier.status in {UNFINISHED}
      and (earlier.created_at < deliveries.created_at
           or (earlier.created_at = deliveries.created_at and earlier.id < deliveries.id))"""
# The oldest delivery that may run now: queued or due for retry, or running past its lease (its
# worker died), and with no earlier unfinished delivery for the same contact id or email.
_CLAIMABLE = f"""
select id from deliveries
where status in {UNFINISHED}
  and ((status != '{RUNNING}' and run_after <= :now) or (status = '{RUNNING}' and lease_until < :now))
  and not exists ({_EARLIER.format(person="contact_id")})
  and not exists ({_EARLIER.format(person="email")})
order by created_at, id
limit 1
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
    run_after: float = 0.0  # not claimed before this time (arrival, or the next retry)


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
            columns = {row["name"] for row in db.execute("pragma table_info(deliveries)")}
            if "run_after" not in columns:  # a store written by version 0.1, when Huey held the queue
                db.execute("alter table deliveries add column run_after real not null default 0")

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
    ) -> tuple[Delivery, bool]:
        """Insert a delivery, runnable at once, and return it with ``True``. If a delivery with
        ``dedupe_key`` arrived within ``window`` seconds, that one is returned with ``False`` and
        nothing is written: the look-up and the insert share one write transaction, so
        simultaneous redeliveries cannot both pass."""
        with self._write() as db:
            now = time.time()  # under the write lock: created_at order is commit order, which claims rely on
            if dedupe_key is not None:
                row = db.execute(
                    "select * from deliveries where dedupe_key = ? and created_at > ? order by created_at limit 1",
                    (dedupe_key, now - window),
                ).fetchone()
                if row is not None:
                    return _delivery(row), False
            delivery = Delivery(uuid.uuid4().hex, action, contact_id, email, role, send_notification,
                                created_at=now, updated_at=now, retry_since=now, dedupe_key=dedupe_key, run_after=now)
            db.execute(
                "insert into deliveries (id, action, contact_id, email, role, send_notification, status,"
                " created_at, updated_at, retry_since, dedupe_key, run_after) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (delivery.id, action, contact_id, email, role, int(send_notification), QUEUED, now, now, now, dedupe_key, now),
            )
        return delivery, True

    def get(self, delivery_id: str) -> Delivery | None:
        row = self._db().execute("select * from deliveries where id = ?", (delivery_id,)).fetchone()
        return _delivery(row) if row else None

    def recent(self, limit: int = 20) -> list[Delivery]:
        rows = self._db().execute("select * from deliveries order by created_at desc limit ?", (limit,)).fetchall()
        return [_delivery(row) for row in rows]

    def claim_next(self, lease_seconds: float) -> Delivery | None:
        """Take the oldest runnable delivery and hold it for ``lease_seconds``; ``None`` if none is.

        One worker holds a delivery until it ends or its lease runs out (then another takes it
        over), and a delivery waits until every earlier unfinished one for the same contact id or
        email has ended: one contact at a time, in arrival order, across threads and processes.
        The returned delivery has this attempt counted.
        """
        with self._write() as db:
            now = time.time()
            row = db.execute(_CLAIMABLE, {"now": now}).fetchone()
            if row is None:
                return None
            db.execute(
                "update deliveries set status = ?, lease_until = ?, attempts = attempts + 1, updated_at = ? where id = ?",
                (RUNNING, now + lease_seconds, now, row["id"]),
            )
            claimed = db.execute("select * from deliveries where id = ?", (row["id"],)).fetchone()
        return _delivery(claimed)

    def retry_later(self, delivery_id: str, delay: float, result: str) -> None:
        """Give a claimed delivery back, to be claimed again in ``delay`` seconds."""
        now = time.time()
        with self._write() as db:
            db.execute(
                "update deliveries set status = ?, run_after = ?, lease_until = null, result = ?, updated_at = ? where id = ?",
                (RETRYING, now + delay, result, now, delivery_id),
            )

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

    def requeue(self, delivery_id: str) -> bool:
        """Make a failed delivery runnable now, with a fresh retry horizon; ``False`` if it is not failed."""
        now = time.time()
        with self._write() as db:
            return db.execute(
                "update deliveries set status = ?, attempts = 0, result = 'replayed', retry_since = ?, run_after = ?,"
                " updated_at = ? where id = ? and status = ?",
                (QUEUED, now, now, now, delivery_id, FAILED),
            ).rowcount == 1

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
