"""Delivery records, which are also the queue: what arrived, when it may run, what became of it.

A delivery is committed before the webhook is answered, and workers claim the oldest runnable
row under a lease. Keeping the queue in the records themselves means there is no second entry to
lose or duplicate: a killed web process leaves a whole delivery or none, a killed worker's
delivery becomes claimable again when its lease ends, and a retry is just a later ``run_after``.
The SQL here runs on SQLite and PostgreSQL alike (``database.py`` holds what differs).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from .database import Database, StoreUnavailable, connect

__all__ = ["Attempt", "Delivery", "Store", "StoreUnavailable", "QUEUED", "RUNNING", "RETRYING", "PUSHING", "DONE", "SKIPPED", "FAILED"]

QUEUED, RUNNING, RETRYING, DONE, SKIPPED, FAILED = "queued", "running", "retrying", "done", "skipped", "failed"
PUSHING = "pushing"  # the user exists; its generated password waits (sealed) for a batched push to Ortto
UNFINISHED = f"('{QUEUED}', '{RETRYING}', '{RUNNING}', '{PUSHING}')"  # literal SQL, so the partial indexes apply

MAX_KEY_CLIENTS = 10_000  # client addresses whose wrong keys are counted at once

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
    created_at {float} not null,
    updated_at {float} not null,
    retry_since {float} not null,
    lease_until {float},
    dedupe_key text,
    run_after {float} not null,
    push_to text
);
create index if not exists deliveries_dedupe on deliveries (dedupe_key, created_at);
create index if not exists deliveries_created on deliveries (created_at);
create index if not exists deliveries_updated on deliveries (updated_at);
drop index if exists deliveries_unfinished;
drop index if exists deliveries_unfinished_contact;
drop index if exists deliveries_unfinished_email;
create index if not exists deliveries_open on deliveries (created_at, id) where status in {unfinished};
create index if not exists deliveries_open_contact on deliveries (contact_id, created_at) where status in {unfinished};
create index if not exists deliveries_open_email on deliveries (email, created_at) where status in {unfinished};
create table if not exists key_failures (
    client text primary key,
    window_start {float} not null,
    failures integer not null
);
create index if not exists key_failures_window on key_failures (window_start);
create table if not exists attempts (
    delivery_id text not null,
    at {float} not null,
    call text not null,
    status text not null,
    code text not null default '',
    message text not null,
    next_retry {float}
);
create index if not exists attempts_delivery on attempts (delivery_id, at);
create table if not exists refusals (
    reason text primary key,
    count integer not null,
    last_at {float} not null
);
create table if not exists heartbeats (
    worker text primary key,
    beat_at {float} not null
)
"""

# Columns added since 0.1 (when Huey held the queue), with what an older row gets.
_ADDED_COLUMNS = {"run_after": "{float} not null default 0", "push_to": "text"}

# Another delivery for the same person that must end first: an earlier unfinished one, or one
# running under a live lease whatever its order (with several web processes, a delivery can
# commit after a later one has started).
_BLOCKED_BY = f"""
    select 1 from deliveries other
    where other.{{person}} = deliveries.{{person}} and other.id != deliveries.id and other.status in {UNFINISHED}
      and (other.created_at < deliveries.created_at
           or (other.created_at = deliveries.created_at and other.id < deliveries.id)
           or (other.status = '{RUNNING}' and other.lease_until >= :now))"""
# The oldest delivery that may run now: queued or due for retry, or running past its lease (its
# worker died), and not blocked by another delivery for the same contact id or email.
_CLAIMABLE = f"""
select id from deliveries
where status in {UNFINISHED}
  and ((status in ('{QUEUED}', '{RETRYING}') and run_after <= :now) or (status = '{RUNNING}' and lease_until < :now))
  and not exists ({_BLOCKED_BY.format(person="contact_id")})
  and not exists ({_BLOCKED_BY.format(person="email")})
order by created_at, id
limit 1
"""


@dataclass(frozen=True)
class Attempt:
    """One step in a delivery's history: a run of its action, a password push, a replay."""

    at: float
    call: str  # what ran: the action ("add"), "password push", "replay"
    status: str  # what it left the delivery as
    message: str
    code: str = ""  # the peer's own error code (WordPress's, Ortto's), if it refused
    next_retry: float | None = None


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
    push_to: str | None = None  # the Ortto person whose Return Password field gets ``secret``


class Store:
    def __init__(self, database_url: str):
        """Open the store and create its schema if needed (``wpf-bridge migrate`` does only that)."""
        self.database: Database = connect(database_url)
        with self.database.transaction() as tx:
            self.database.prepare(tx)
            float_type = self.database.float_type
            statements = _SCHEMA.format(float=float_type, unfinished=UNFINISHED).split(";")
            tx.execute(statements[0])  # the deliveries table
            columns = self.database.columns(tx, "deliveries")
            for name, definition in _ADDED_COLUMNS.items():  # a store written by an earlier version
                if name not in columns:
                    tx.execute(f"alter table deliveries add column {name} {definition.format(float=float_type)}")
            for statement in statements[1:]:
                tx.execute(statement)

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
        nothing is written: the look-up and the insert are serialised per key in one transaction,
        so simultaneous redeliveries cannot both pass."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            if dedupe_key is not None:
                self.database.serialize_key(tx, dedupe_key)
                rows = tx.execute(
                    "select * from deliveries where dedupe_key = :key and created_at > :since order by created_at limit 1",
                    {"key": dedupe_key, "since": now - window},
                )
                if rows:
                    return _delivery(rows[0]), False
            delivery = Delivery(uuid.uuid4().hex, action, contact_id, email, role, send_notification,
                                created_at=now, updated_at=now, retry_since=now, dedupe_key=dedupe_key, run_after=now)
            tx.execute(
                "insert into deliveries (id, action, contact_id, email, role, send_notification, status,"
                " created_at, updated_at, retry_since, dedupe_key, run_after) values (:id, :action, :contact_id,"
                " :email, :role, :send_notification, :status, :now, :now, :now, :dedupe_key, :now)",
                {"id": delivery.id, "action": action, "contact_id": contact_id, "email": email, "role": role,
                 "send_notification": int(send_notification), "status": QUEUED, "now": now, "dedupe_key": dedupe_key},
            )
        return delivery, True

    def get(self, delivery_id: str) -> Delivery | None:
        rows = self.database.query("select * from deliveries where id = :id", {"id": delivery_id})
        return _delivery(rows[0]) if rows else None

    def with_id_prefix(self, prefix: str) -> list[Delivery]:
        """The deliveries whose id starts with ``prefix`` (6 characters at least; at most two returned)."""
        if len(prefix) < 6 or not prefix.isalnum():
            return [found for found in [self.get(prefix)] if found]
        rows = self.database.query("select * from deliveries where id >= :low and id < :high order by id limit 2",
                                   {"low": prefix.lower(), "high": prefix.lower() + "~"})
        return [_delivery(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each status."""
        rows = self.database.query("select status, count(*) as n from deliveries group by status")
        return {row["status"]: int(row["n"]) for row in rows}

    def claim_next(self, lease_seconds: float) -> Delivery | None:
        """Take the oldest runnable delivery and hold it for ``lease_seconds``; ``None`` if none is.

        One worker holds a delivery until it ends or its lease runs out (then another takes it
        over), and a delivery waits until every other unfinished one for the same contact id or
        email that came before it, or that is running, has ended: one contact at a time, in
        arrival order, across threads, processes and hosts. Claims are serialised, so two
        workers never see the same row free. The returned delivery has this attempt counted.
        """
        with self.database.transaction() as tx:
            self.database.serialize_claims(tx)
            now = self.database.now(tx)
            rows = tx.execute(_CLAIMABLE, {"now": now})
            if not rows:
                return None
            tx.execute(
                "update deliveries set status = :status, lease_until = :lease, attempts = attempts + 1,"
                " updated_at = :now where id = :id",
                {"status": RUNNING, "lease": now + lease_seconds, "now": now, "id": rows[0]["id"]},
            )
            claimed = tx.execute("select * from deliveries where id = :id", {"id": rows[0]["id"]})
        return _delivery(claimed[0])

    def finish(self, delivery_id: str, status: str, result: str, user_id: int | None = None, *,
               call: str = "", code: str = "", email: str | None = None) -> None:
        """Record how a run of ``call`` ended (``pushing`` included: the push is claimed separately),
        and the contact's ``email`` when the webhook did not carry one."""
        self._finish([(delivery_id, status, result, user_id, code)], forget_secret=False, call=call, email=email)

    def finish_many(self, outcomes: list[tuple[str, str, str, str]], forget_secret: bool = False, *, call: str = "") -> None:
        """Record how several pushes ended (id, status, result, code) in one write, and erase their
        sealed passwords in the same write when they have reached Ortto."""
        self._finish([(delivery_id, status, result, None, code) for delivery_id, status, result, code in outcomes],
                     forget_secret, call=call)

    def _finish(self, outcomes: list[tuple[str, str, str, int | None, str]], forget_secret: bool, call: str,
                email: str | None = None) -> None:
        """A delivery that fails for good loses its sealed password at once, whatever the caller says."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            for delivery_id, status, result, user_id, code in outcomes:
                tx.execute(
                    "update deliveries set status = :status, result = :result, user_id = coalesce(:user_id, user_id),"
                    " email = coalesce(email, :email),"
                    " secret = case when :forget = 1 or :status = 'failed' then null else secret end,"
                    " lease_until = null, updated_at = :now"
                    " where id = :id",
                    {"status": status, "result": result, "user_id": user_id, "forget": int(forget_secret), "email": email,
                     "now": now, "id": delivery_id},
                )
            _record(tx, [(delivery_id, Attempt(now, call, status, result, code))
                         for delivery_id, status, result, _, code in outcomes])

    def claim_pushes(self, limit: int, lease_seconds: float) -> list[Delivery]:
        """Take up to ``limit`` deliveries whose password is due to go to Ortto, oldest first."""
        with self.database.transaction() as tx:
            self.database.serialize_claims(tx)
            now = self.database.now(tx)
            rows = tx.execute(
                f"select * from deliveries where status = '{PUSHING}' and run_after <= :now"
                " and (lease_until is null or lease_until < :now) order by created_at, id limit :limit",
                {"now": now, "limit": limit},
            )
            for row in rows:
                tx.execute("update deliveries set lease_until = :lease where id = :id",
                           {"lease": now + lease_seconds, "id": row["id"]})
        return [_delivery(row) for row in rows]

    def push_later(self, results: dict[str, str], delay: float, *, call: str = "", code: str = "") -> None:
        """Ortto could not take a batch now: try those pushes (delivery id: result) again in ``delay`` s."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            for delivery_id, result in results.items():
                tx.execute(
                    "update deliveries set run_after = :run_after, lease_until = null, attempts = attempts + 1,"
                    " result = :result, updated_at = :now where id = :id",
                    {"run_after": now + delay, "result": result, "now": now, "id": delivery_id},
                )
            _record(tx, [(delivery_id, Attempt(now, call, PUSHING, result, code, now + delay))
                         for delivery_id, result in results.items()])

    def upcoming_contacts(self, limit: int) -> list[tuple[str, float]]:
        """Contact ids of the next deliveries to run, with their latest arrival (for batched loads)."""
        rows = self.database.query(
            f"select contact_id, max(created_at) as created_at from deliveries"
            f" where status in ('{QUEUED}', '{RETRYING}') and contact_id is not null"
            " group by contact_id order by min(created_at) limit :limit",
            {"limit": limit},
        )
        return [(row["contact_id"], float(row["created_at"])) for row in rows]

    def retry_later(self, delivery_id: str, delay: float, result: str, *, call: str = "", code: str = "",
                    email: str | None = None) -> None:
        """Give a claimed delivery back, to be claimed again in ``delay`` seconds."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            tx.execute(
                "update deliveries set status = :status, run_after = :run_after, lease_until = null, result = :result,"
                " email = coalesce(email, :email), updated_at = :now where id = :id",
                {"status": RETRYING, "run_after": now + delay, "result": result, "now": now, "id": delivery_id,
                 "email": email},
            )
            _record(tx, [(delivery_id, Attempt(now, call, RETRYING, result, code, now + delay))])

    def key_failure(self, client: str, window: float) -> int:
        """Count one wrong access key from ``client``; return its failures in the current window.

        Rows whose window has passed are deleted in the same write, and beyond ``MAX_KEY_CLIENTS``
        the oldest go too, so guessing from many addresses cannot grow the table without end."""
        now = time.time()
        with self.database.transaction() as tx:
            tx.execute("delete from key_failures where window_start <= :since", {"since": now - window})
            tx.execute(
                "delete from key_failures where window_start <= (select window_start from key_failures"
                " order by window_start desc limit 1 offset :keep)",
                {"keep": MAX_KEY_CLIENTS - 1},
            )
            tx.execute(
                "insert into key_failures (client, window_start, failures) values (:client, :now, 1)"
                " on conflict (client) do update set"
                " failures = case when key_failures.window_start > :since then key_failures.failures + 1 else 1 end,"
                " window_start = case when key_failures.window_start > :since then key_failures.window_start else :now end",
                {"client": client, "now": now, "since": now - window},
            )
            rows = tx.execute("select failures from key_failures where client = :client", {"client": client})
        return int(rows[0]["failures"])

    def key_block(self, client: str, window: float, limit: int) -> float:
        """Seconds until ``client`` may try keys again (0 when it is not blocked)."""
        rows = self.database.query(
            "select window_start, failures from key_failures where client = :client", {"client": client}
        )
        if not rows or rows[0]["failures"] < limit:
            return 0.0
        return max(0.0, rows[0]["window_start"] + window - time.time())

    def prune(self, keep_seconds: float) -> int:
        """Delete finished deliveries (done, skipped, failed) last changed over ``keep_seconds`` ago,
        with their history; return how many went. Unfinished ones are never deleted, however old."""
        with self.database.transaction() as tx:
            tx.execute(f"delete from deliveries where status in ('{DONE}', '{SKIPPED}', '{FAILED}') and updated_at < :before",
                       {"before": self.database.now(tx) - keep_seconds})
            pruned = tx.rowcount
            if pruned:  # deliveries first, then attempts: the order every transaction keeps
                tx.execute("delete from attempts where not exists (select 1 from deliveries where id = attempts.delivery_id)")
            return pruned

    def requeue(self, delivery_id: str) -> bool:
        """Make a failed delivery runnable now, with a fresh retry horizon; ``False`` if it is not
        failed. Its history keeps every earlier attempt, and gains the replay."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            tx.execute(
                "update deliveries set status = :queued, attempts = 0, result = 'replayed', retry_since = :now,"
                " run_after = :now, updated_at = :now where id = :id and status = :failed",
                {"queued": QUEUED, "now": now, "id": delivery_id, "failed": FAILED},
            )
            if tx.rowcount != 1:
                return False
            _record(tx, [(delivery_id, Attempt(now, "replay", QUEUED, "replayed by an operator"))])
            return True

    def history(self, delivery_id: str) -> list[Attempt]:
        """Every recorded step of a delivery, oldest first."""
        rows = self.database.query(
            "select at, call, status, message, code, next_retry from attempts where delivery_id = :id order by at",
            {"id": delivery_id},
        )
        return [Attempt(**row) for row in rows]

    def find(self, *, status: str | None = None, email: str | None = None, contact_id: str | None = None,
             since: float | None = None, limit: int | None = 20) -> list[Delivery]:
        """Deliveries matching every filter given, newest first (``limit=None``: all of them)."""
        filters = {"status = :status": status, "lower(email) = :email": email and email.lower(),
                   "contact_id = :contact_id": contact_id, "created_at >= :since": since}
        where = [condition for condition, value in filters.items() if value is not None]
        params: dict[str, Any] = {condition.split(":")[1]: value for condition, value in filters.items() if value is not None}
        sql = "select * from deliveries" + (" where " + " and ".join(where) if where else "") + " order by created_at desc"
        if limit is not None:
            sql += " limit :limit"
            params["limit"] = limit
        return [_delivery(row) for row in self.database.query(sql, params)]

    def count_refusals(self, counts: dict[str, tuple[int, float]]) -> None:
        """Add refused webhooks by reason (which parameter, which rule; never the value sent):
        how many, and when the last one came."""
        with self.database.transaction() as tx:
            for reason, (count, last) in counts.items():
                tx.execute(
                    "insert into refusals (reason, count, last_at) values (:reason, :count, :last) on conflict (reason)"
                    " do update set count = refusals.count + :count, last_at = case when refusals.last_at > :last then refusals.last_at else :last end",
                    {"reason": reason[:200], "count": count, "last": last},
                )

    def refusals(self) -> list[tuple[str, int, float]]:
        """(reason, how many, last time) for every kind of refused webhook, most frequent first."""
        rows = self.database.query("select reason, count, last_at from refusals order by count desc, reason")
        return [(row["reason"], int(row["count"]), float(row["last_at"])) for row in rows]

    def beat(self, worker: str) -> None:
        """A worker process says it is alive."""
        with self.database.transaction() as tx:
            tx.execute(
                "insert into heartbeats (worker, beat_at) values (:worker, :now)"
                " on conflict (worker) do update set beat_at = :now",
                {"worker": worker, "now": self.database.now(tx)},
            )

    def health(self) -> dict[str, float | int | None]:
        """What readiness is judged on: the latest worker heartbeat, the latest applied delivery,
        how many deliveries wait and since when (times in seconds since the epoch, or ``None``)."""
        beat = self.database.query("select max(beat_at) as at from heartbeats")[0]["at"]
        applied = self.database.query(
            f"select max(updated_at) as at from deliveries where status in ('{DONE}', '{SKIPPED}')")[0]["at"]
        waiting = self.database.query(
            f"select count(*) as n, min(created_at) as oldest from deliveries where status in {UNFINISHED}")[0]
        return {"now": time.time(), "worker_beat": beat, "last_applied": applied,
                "waiting": int(waiting["n"]), "oldest_waiting": waiting["oldest"]}

    def update(self, delivery_id: str, **values: object) -> None:
        """Set columns of one delivery (``status``, ``result``, ``user_id``, ``secret``, ``push_to``, ``attempts``)."""
        unknown = set(values) - {"status", "result", "user_id", "secret", "push_to", "attempts"}
        if unknown:
            raise ValueError(f"not a delivery column: {sorted(unknown)}")
        columns = ", ".join(f"{name} = :{name}" for name in values)
        with self.database.transaction() as tx:
            tx.execute(
                f"update deliveries set {columns}, updated_at = :updated_at where id = :delivery_id",
                {**values, "updated_at": time.time(), "delivery_id": delivery_id},
            )


def _record(tx: Any, steps: list[tuple[str, Attempt]]) -> None:
    """Add steps to deliveries' histories. Every transaction writes ``deliveries`` before
    ``attempts`` (and the schema is created in that order), so none waits on the other in a cycle."""
    for delivery_id, attempt in steps:
        tx.execute(
            "insert into attempts (delivery_id, at, call, status, code, message, next_retry)"
            " values (:delivery_id, :at, :call, :status, :code, :message, :next_retry)",
            {"delivery_id": delivery_id, "at": attempt.at, "call": attempt.call, "status": attempt.status,
             "code": attempt.code or "", "message": attempt.message, "next_retry": attempt.next_retry},
        )


def _delivery(row: dict[str, Any]) -> Delivery:
    data = dict(row)
    data["send_notification"] = bool(data["send_notification"])
    return Delivery(**data)
