"""The two databases the delivery store runs on: SQLite (one host, nothing to install) and
PostgreSQL (any number of web and worker processes on any number of hosts).

The store writes its SQL once, with ``:name`` parameters; a ``Database`` supplies connections
(a few per process, lent to its threads), transactions, the few statements that differ, and turns every driver error
into ``StoreUnavailable`` so the web process answers 503 and Ortto retries.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any, Protocol

from ..errors import TransientError

BUSY_TIMEOUT = 10.0  # seconds a write waits for another writer before the store counts as unavailable
IDLE_IN_TRANSACTION = 10.0  # seconds PostgreSQL lets a session sit in an open transaction before ending it
KEY_LOCK = 0x77706662  # PostgreSQL advisory lock class that serialises redelivery checks per key ("wpfb")
SCHEMA_LOCK = 0x77706663  # held by the process that migrates
PERSON_LOCK = 0x77706664  # held per contact id and email by a claim, until it commits
CONNECTIONS = 8  # per process: what its threads (a worker's groups run fifty at once) share
# Per SQLite file and process: this process's writers queue here before the lock file. Keyed by
# pid too, so a process forked after its parent opened the file (gunicorn's workers, after the
# master checked the schema) makes its own lock once gevent has patched ``threading``.
_WRITERS: dict[tuple[int, str], threading.Lock] = {}
_WRITERS_GUARD = threading.Lock()


class StoreUnavailable(TransientError):
    """The database cannot be read or written: the webhook answers 503 so that Ortto retries."""


class Transaction(Protocol):
    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...

    @property
    def rowcount(self) -> int: ...


class Database(Protocol):
    float_type: str
    functions: bool  # the store may define SQL functions (PostgreSQL)
    skip_locked: str  # what a claim's select ends with: rows another transaction holds are passed over
    claims_overlap: bool  # may another claim commit between a claim's read and its write (then it reads again)

    def transaction(self) -> AbstractContextManager[Transaction]: ...
    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...
    def now(self, tx: Transaction) -> float: ...
    def hold_people(self, tx: Transaction, people: list[str], wait: bool = False) -> bool: ...
    def serialize_key(self, tx: Transaction, key: str) -> None: ...
    def prepare(self, tx: Transaction) -> None: ...
    def columns(self, tx: Transaction, table: str) -> set[str]: ...
    def has_table(self, table: str) -> bool: ...
    def close(self) -> None: ...


class _Pool:
    """The connections a process's threads share: each transaction or read borrows one and gives
    it back, so that a worker applying groups of fifty deliveries on fifty threads holds a few
    connections, not hundreds (PostgreSQL allows 100 by default, a small Heroku plan 20). At most
    ``size`` are open; a borrower waits while all are lent. None is borrowed while another is held."""

    def __init__(self, opener: Callable[[], Any], size: int = CONNECTIONS):
        self._opener = opener
        self._size = size
        self._idle: list[Any] = []
        self._opened = 0
        self._returned = threading.Condition()

    @contextmanager
    def borrow(self) -> Iterator[list[Any]]:
        """A one-item list holding the connection: a borrower that replaces a broken one puts the new one there."""
        with self._returned:
            while not self._idle and self._opened >= self._size:
                self._returned.wait()
            held = [self._idle.pop()] if self._idle else []
            self._opened += 0 if held else 1
        if not held:
            try:
                held.append(self._opener())
            except BaseException:
                with self._returned:
                    self._opened -= 1
                    self._returned.notify()
                raise
        try:
            yield held
        finally:
            with self._returned:
                self._idle.append(held[0])
                self._returned.notify()

    def drain(self) -> list[Any]:
        """Take every idle connection, to be closed (a ``Store`` made for one look, by ``check``)."""
        with self._returned:
            idle, self._idle = self._idle, []
            self._opened -= len(idle)
            return idle


def connect(database_url: str) -> Database:
    """``sqlite:///path.db`` (``sqlite:////abs/path.db``), ``postgresql://…`` or ``postgres://…``."""
    if database_url.startswith("sqlite:///"):
        return SqliteDatabase(Path(database_url.removeprefix("sqlite:///")))
    if database_url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(database_url)
    raise ValueError(f"unsupported DATABASE_URL scheme: {database_url.split(':', 1)[0]}")


class _Cursor:
    """What a transaction hands the store: ``execute`` returning rows as dicts, and ``rowcount``."""

    def __init__(self, run):
        self._run = run
        self.rowcount = 0

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        rows, self.rowcount = self._run(sql, params or {})
        return rows


class SqliteDatabase:
    """WAL, ``synchronous=full`` (a 202 means the delivery is on disk), ``begin immediate``: one
    writer at a time, so claims and redelivery checks need no further locking."""

    float_type = "real"
    functions = False
    skip_locked = ""  # ``begin immediate``: one writer at a time, nothing to pass over
    claims_overlap = False

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _owner_only(path)
        self._pool = _Pool(self._open)
        with _WRITERS_GUARD:
            self._writer = _WRITERS.setdefault((os.getpid(), str(path.absolute())), threading.Lock())

    def _open(self) -> tuple[sqlite3.Connection, int]:
        """A connection, and its own descriptor of ``<file>.lock``: writers queue on an flock(2) of it
        before ``begin immediate``, which the kernel hands to the next writer at once, where SQLite's
        busy handler would sleep 1 to 100 ms between tries. A killed writer releases it; a frozen one
        stalls writers until it resumes, as it would hold SQLite's own write lock."""
        db = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        # Turning a new file to WAL takes an exclusive lock that processes starting together
        # compete for: wait for it here; writes wait in ``_begin`` instead (busy timeout 0).
        db.execute(f"pragma busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        db.execute("pragma journal_mode=wal")
        db.execute("pragma busy_timeout = 0")
        db.execute("pragma synchronous=full")
        return db, os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)

    @staticmethod
    def _run(db: sqlite3.Connection, sql: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        cursor = db.execute(sql, params)
        return [dict(row) for row in cursor.fetchall()], cursor.rowcount

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """The writers of this process queue on a lock of its own first, then on the lock file with
        other processes. In a gevent web worker ``flock`` blocks the whole process while a writer of
        the same process that holds the file waits (yields) for ``begin immediate``: without the
        first lock the two would wait on each other for ever; with it the second yields instead."""
        with self._pool.borrow() as held, self._writer:
            db, lock = held[0]
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._begin(db)
                yield _Cursor(lambda sql, params: self._run(db, sql, params))
                db.execute("commit")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"delivery store unavailable: {exc}") from None
            finally:
                if db.in_transaction:
                    db.execute("rollback")
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _begin(db: sqlite3.Connection) -> None:
        """``begin immediate``, waiting in steps of a fraction of a millisecond for a writer that
        did not take the lock file (the ``sqlite3`` shell, say), for up to ``BUSY_TIMEOUT``."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                db.execute("begin immediate")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(0.0001, 0.0006))

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            with self._pool.borrow() as held:
                return self._run(held[0][0], sql, params or {})[0]
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"delivery store unavailable: {exc}") from None

    def now(self, tx: Transaction) -> float:
        return time.time()  # under the write lock: time order is commit order

    def hold_people(self, tx: Transaction, people: list[str], wait: bool = False) -> bool:
        """``begin immediate`` already holds everything."""
        return True

    def serialize_key(self, tx: Transaction, key: str) -> None:
        """``begin immediate`` already did."""

    def prepare(self, tx: Transaction) -> None:
        """Nothing to lock: ``begin immediate`` serialises schema changes."""

    def columns(self, tx: Transaction, table: str) -> set[str]:
        return {row["name"] for row in tx.execute(f"pragma table_info({table})")}

    def has_table(self, table: str) -> bool:
        return bool(self.query("select 1 from sqlite_master where type = 'table' and name = :table", {"table": table}))

    def close(self) -> None:
        for db, lock in self._pool.drain():
            db.close()
            os.close(lock)


def _owner_only(path: Path) -> None:
    """Create the database file readable by its owner only (it holds sealed passwords and every
    delivery's email); SQLite gives its -wal and -shm files the same mode. A file left readable
    by others, by an earlier version, is tightened."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock")):
        if name.exists() and name.stat().st_mode & 0o077 and name.stat().st_uid == os.getuid():
            os.chmod(name, 0o600)


class PostgresDatabase:
    """Connections from a small pool, explicit transactions. Claims pass over rows another claim
    holds (``for update skip locked``) and lock each person they take without waiting; redelivery
    checks for the same key are serialised by a transaction-level advisory lock."""

    float_type = "double precision"
    functions = True  # the store defines functions, to do a webhook's write in one round trip
    skip_locked = " for update skip locked"
    claims_overlap = True

    def __init__(self, url: str):
        self.url = "postgresql://" + url.split("://", 1)[1]  # Heroku spells it postgres://
        self._pool = _Pool(self._open)

    def _open(self):
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
        from psycopg.rows import dict_row

        given = conninfo_to_dict(self.url).get("options") or ""  # e.g. ?options=-csearch_path%3Dbridge
        # A process frozen inside a transaction (SIGSTOP, a paused VM) would hold the claim lock
        # for ever: the server ends such a session after IDLE_IN_TRANSACTION (ours last milliseconds).
        return psycopg.connect(
            self.url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=10,
            options=f"{given} -c lock_timeout={int(BUSY_TIMEOUT * 1000)}"
            f" -c idle_in_transaction_session_timeout={int(IDLE_IN_TRANSACTION * 1000)}".strip(),
        )

    def _usable(self, held: list[Any]):
        """The borrowed connection, replaced first if it is known to be closed or broken."""
        if held[0].closed or held[0].broken:
            held[0] = self._open()
        return held[0]

    @staticmethod
    def _run(db, sql: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        cursor = db.execute(_pyformat(sql), params)
        return (cursor.fetchall() if cursor.description else []), cursor.rowcount

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        import psycopg

        try:
            with self._pool.borrow() as held:
                db, begun = self._begin(held)
                with begun:
                    yield _Cursor(lambda sql, params: self._run(db, sql, params))
        except psycopg.Error as exc:
            raise StoreUnavailable(f"delivery store unavailable: {type(exc).__name__}: {exc}") from None

    def _begin(self, held: list[Any]):
        """A connection and its open transaction. A connection the server closed while it sat idle
        (a restart, a failover, ``pg_terminate_backend``, an idle timeout) fails at ``begin``, before
        anything ran in it: it is replaced once, so the next webhook commits instead of answering 503."""
        import psycopg

        db = self._usable(held)
        begun = ExitStack()
        try:
            begun.enter_context(db.transaction())
        except psycopg.OperationalError:
            db.close()
            db = self._usable(held)
            begun.enter_context(db.transaction())
        return db, begun

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One statement (a read, or a write that is safe to send twice); on a connection the server
        closed, sent again on a new one."""
        import psycopg

        try:
            with self._pool.borrow() as held:
                try:
                    return self._run(self._usable(held), sql, params or {})[0]
                except psycopg.OperationalError:
                    held[0].close()
                    return self._run(self._usable(held), sql, params or {})[0]
        except psycopg.Error as exc:
            raise StoreUnavailable(f"delivery store unavailable: {type(exc).__name__}: {exc}") from None

    def now(self, tx: Transaction) -> float:
        """The database's clock, so that web processes on several hosts agree on arrival order."""
        return float(tx.execute("select extract(epoch from clock_timestamp()) as now")[0]["now"])

    def hold_people(self, tx: Transaction, people: list[str], wait: bool = False) -> bool:
        """Lock each person (``wait``: in the order given, which callers sort), or try to without
        waiting and say whether every one was free. Either way the locks last until the commit."""
        if not people:
            return True
        take = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
        rows = tx.execute(
            f"select {take}(:lock, hashtext(person))::text as got from unnest(cast(:people as text[])) as person",
            {"lock": PERSON_LOCK, "people": people},
        )
        return wait or all(row["got"] == "true" for row in rows)

    def serialize_key(self, tx: Transaction, key: str) -> None:
        tx.execute("select pg_advisory_xact_lock(:lock, hashtext(:key))", {"lock": KEY_LOCK, "key": key})

    def prepare(self, tx: Transaction) -> None:
        """Several dynos may start at once: one creates the schema, the others wait for it."""
        tx.execute("select pg_advisory_xact_lock(:lock)", {"lock": SCHEMA_LOCK})

    def columns(self, tx: Transaction, table: str) -> set[str]:
        rows = tx.execute(
            "select column_name from information_schema.columns"
            " where table_schema = current_schema() and table_name = :table",
            {"table": table},
        )
        return {row["column_name"] for row in rows}

    def has_table(self, table: str) -> bool:
        return self.query("select to_regclass(:table) is not null as found", {"table": table})[0]["found"] is True

    def close(self) -> None:
        for db in self._pool.drain():
            db.close()


_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def _pyformat(sql: str) -> str:
    """``:name`` (the store's spelling, SQLite's) to ``%(name)s`` (psycopg's)."""
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
