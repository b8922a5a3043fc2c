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
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..types import DONE, FAILED, PUSHING, QUEUED, RETRYING, RUNNING, SKIPPED, Attempt, Delivery, End, Run
from .database import CLAIM_LOCK, Database, StoreUnavailable, connect
from .search import Search, in_list
from .sessions import Sessions, prune_sessions

__all__ = ["RECENT_REFUSALS", "ClientBlocked", "Search", "Store", "StoreUnavailable"]

UNFINISHED = f"('{QUEUED}', '{RETRYING}', '{RUNNING}', '{PUSHING}')"  # literal SQL, so the partial indexes apply

MAX_KEY_CLIENTS = 10_000  # client addresses whose wrong keys are counted at once
REPLAY_PAUSE = 0.005  # seconds between a bulk replay's transactions

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
create table if not exists key_totals (
    client text primary key,
    window_start {float} not null,
    failures integer not null
);
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
);
create table if not exists refused_recent (
    at {float} not null,
    status integer not null,
    reason text not null,
    client text not null
);
create index if not exists refused_recent_at on refused_recent (at);
create table if not exists operator_actions (
    id text primary key,
    at {float} not null,
    who text not null,
    what text not null,
    matched integer not null default 0,
    done integer not null default 0,
    finished_at {float},
    updated_at {float} not null
);
create index if not exists operator_actions_at on operator_actions (at);
create table if not exists marks (
    name text primary key,
    value {float} not null
);
create table if not exists console_sessions (
    id text primary key,
    who text not null,
    client text not null,
    password text not null,
    created_at {float} not null,
    expires_at {float} not null
);
create index if not exists console_sessions_expires on console_sessions (expires_at)
"""

# Columns added since 0.1 (when Huey held the queue), with what an older row gets.
_ADDED_COLUMNS = {
    "deliveries": {
        "run_after": "{float} not null default 0",
        "push_to": "text",
        "shape": "text",
        "lease_owner": "text",
    },
    "attempts": {"duration": "{float}", "calls": "text not null default ''"},
}
RECENT_REFUSALS = 200  # refused webhooks kept one by one (time, reason, client) for the console

# A write by a worker's claim applies only while that claim holds the lease.
_HELD = " and lease_owner = :owner"

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
limit :limit
"""


# PostgreSQL: a webhook's whole write as one statement, so one round trip to the server: the
# client's wrong-key block, the redelivery check (serialised per key) and the insert. The id comes
# from the caller, so the statement can be sent again after a lost connection: it then finds its
# own row instead of inserting a second. Times: the database's clock, as ``now`` elsewhere; the
# key block, the web host's (``key_failure`` writes its times).
_ADD_FUNCTION = f"""
create or replace function wpf_add_delivery(p_id text, p_action text, p_contact_id text, p_email text, p_role text,
    p_notify integer, p_key text, p_window double precision, p_shape text,
    p_client text, p_client_now double precision, p_key_window double precision, p_key_limit integer)
returns json language plpgsql as $fn$
declare
    v_now double precision;
    v_row deliveries;
    v_block key_failures;
begin
    if p_client is not null then
        select * into v_block from key_failures where client = p_client;
        if found and v_block.failures >= p_key_limit and v_block.window_start + p_key_window > p_client_now then
            return json_build_object('blocked', v_block.window_start + p_key_window - p_client_now);
        end if;
    end if;
    if p_key is not null then
        perform pg_advisory_xact_lock({CLAIM_LOCK}, hashtext(p_key));
    end if;
    select * into v_row from deliveries where id = p_id;
    if found then
        return json_build_object('added', true, 'delivery', row_to_json(v_row));
    end if;
    v_now := extract(epoch from clock_timestamp());
    if p_key is not null then
        select * into v_row from deliveries where dedupe_key = p_key and created_at > v_now - p_window
            order by created_at limit 1;
        if found then
            return json_build_object('added', false, 'delivery', row_to_json(v_row));
        end if;
    end if;
    insert into deliveries (id, action, contact_id, email, role, send_notification, status, created_at, updated_at,
                            retry_since, dedupe_key, run_after, shape)
        values (p_id, p_action, p_contact_id, p_email, p_role, p_notify, '{QUEUED}', v_now, v_now, v_now, p_key, v_now,
                p_shape)
        returning * into v_row;
    return json_build_object('added', true, 'delivery', row_to_json(v_row));
end
$fn$
"""


class ClientBlocked(Exception):
    """The client sent too many wrong access keys; it may try again in ``wait`` seconds."""

    def __init__(self, wait: float):
        super().__init__(f"blocked for {wait:.0f} s")
        self.wait = wait


class Store:
    def __init__(self, database_url: str):
        """Open the store and create its schema if needed (``wpf-bridge migrate`` does only that)."""
        self.database: Database = connect(database_url)
        with self.database.transaction() as tx:
            self.database.prepare(tx)
            float_type = self.database.float_type
            statements = _SCHEMA.format(float=float_type, unfinished=UNFINISHED).split(";")
            tx.execute(statements[0])  # the deliveries table
            self._add_columns(tx, "deliveries")
            for statement in statements[1:]:
                tx.execute(statement)
            self._add_columns(tx, "attempts")
            if self.database.functions:
                tx.execute(_ADD_FUNCTION)
        self.sessions = Sessions(self.database)

    def close(self) -> None:
        """Close its idle connections (and SQLite's lock-file descriptors): a store opened for one look."""
        self.database.close()

    def _add_columns(self, tx: Any, table: str) -> None:
        """Bring a table written by an earlier version up to date."""
        columns = self.database.columns(tx, table)
        for name, definition in _ADDED_COLUMNS[table].items():
            if name not in columns:
                tx.execute(f"alter table {table} add column {name} {definition.format(float=self.database.float_type)}")

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
        shape: str | None = None,
        client: str | None = None,
        key_limit: tuple[float, int] = (0.0, 0),
    ) -> tuple[Delivery, bool]:
        """Insert a delivery, runnable at once, and return it with ``True``. If a delivery with
        ``dedupe_key`` arrived within ``window`` seconds, that one is returned with ``False`` and
        nothing is written: the look-up and the insert are serialised per key in one transaction,
        so simultaneous redeliveries cannot both pass. With ``client``, ``ClientBlocked`` is raised
        instead when that client is over ``key_limit`` (seconds, wrong keys; see ``key_failure``).
        On PostgreSQL all of it is one statement (``_ADD_FUNCTION``): one round trip."""
        delivery_id = uuid.uuid4().hex
        if self.database.functions:
            return self._add_in_one_statement(
                delivery_id,
                action,
                contact_id,
                email,
                role,
                send_notification,
                dedupe_key,
                window,
                shape,
                client,
                key_limit,
            )
        with self.database.transaction() as tx:
            if client is not None:
                rows = tx.execute(
                    "select window_start, failures from key_failures where client = :client", {"client": client}
                )
                wait = _blocked_for(rows, *key_limit)
                if wait:
                    raise ClientBlocked(wait)
            if dedupe_key is not None:
                self.database.serialize_key(tx, dedupe_key)
            return self._insert(
                tx,
                self.database.now(tx),
                delivery_id,
                action,
                contact_id,
                email,
                role,
                send_notification,
                dedupe_key,
                window,
                shape,
            )

    def _add_in_one_statement(
        self,
        delivery_id: str,
        action: str,
        contact_id: str | None,
        email: str | None,
        role: str | None,
        send_notification: bool,
        dedupe_key: str | None,
        window: float,
        shape: str | None,
        client: str | None,
        key_limit: tuple[float, int],
    ) -> tuple[Delivery, bool]:
        # ``query`` sends it again once on a connection the server had closed: safe, the id makes it idempotent
        [row] = self.database.query(
            "select wpf_add_delivery(:id, :action, :contact_id, :email, :role, :notify, :dedupe_key, :window, :shape,"
            " :client, :client_now, :key_window, :key_limit) as added",
            {
                "id": delivery_id,
                "action": action,
                "contact_id": contact_id,
                "email": email,
                "role": role,
                "notify": int(send_notification),
                "dedupe_key": dedupe_key,
                "window": window,
                "shape": shape,
                "client": client,
                "client_now": time.time(),
                "key_window": key_limit[0],
                "key_limit": key_limit[1],
            },
        )
        added = row["added"]
        if "blocked" in added:
            raise ClientBlocked(float(added["blocked"]))
        return _delivery(added["delivery"]), bool(added["added"])

    def add_many(
        self, calls: Sequence[tuple[str, str | None, str | None, str | None, bool, str]], window: float, shape: str
    ) -> list[tuple[Delivery, bool]]:
        """Insert several deliveries (action, contact id, email, role, notification, dedupe key) in
        one transaction: all or none. Each whose key arrived within ``window`` is returned instead,
        with ``False``. Keys are serialised as a whole (an import's keys are its own)."""
        with self.database.transaction() as tx:
            self.database.serialize_key(tx, "add_many")
            now = self.database.now(tx)
            return [
                self._insert(tx, now, uuid.uuid4().hex, action, contact_id, email, role, notify, key, window, shape)
                for action, contact_id, email, role, notify, key in calls
            ]

    def keys_seen(self, keys: list[str], window: float) -> set[str]:
        """Which of these dedupe keys a delivery that arrived within ``window`` seconds carries."""
        seen: set[str] = set()
        for start in range(0, len(keys), 500):
            condition, names = in_list("dedupe_key", "key", keys[start : start + 500])
            rows = self.database.query(
                f"select dedupe_key from deliveries where {condition} and created_at > :since",
                {**names, "since": time.time() - window},
            )
            seen.update(row["dedupe_key"] for row in rows)
        return seen

    @staticmethod
    def _insert(
        tx: Any,
        now: float,
        delivery_id: str,
        action: str,
        contact_id: str | None,
        email: str | None,
        role: str | None,
        send_notification: bool,
        dedupe_key: str | None,
        window: float,
        shape: str | None,
    ) -> tuple[Delivery, bool]:
        if dedupe_key is not None:
            rows = tx.execute(
                "select * from deliveries where dedupe_key = :key and created_at > :since order by created_at limit 1",
                {"key": dedupe_key, "since": now - window},
            )
            if rows:
                return _delivery(rows[0]), False
        delivery = Delivery(
            delivery_id,
            action,
            contact_id,
            email,
            role,
            send_notification,
            created_at=now,
            updated_at=now,
            retry_since=now,
            dedupe_key=dedupe_key,
            run_after=now,
            shape=shape,
        )
        tx.execute(
            "insert into deliveries (id, action, contact_id, email, role, send_notification, status,"
            " created_at, updated_at, retry_since, dedupe_key, run_after, shape) values (:id, :action, :contact_id,"
            " :email, :role, :send_notification, :status, :now, :now, :now, :dedupe_key, :now, :shape)",
            {
                "id": delivery.id,
                "action": action,
                "contact_id": contact_id,
                "email": email,
                "role": role,
                "send_notification": int(send_notification),
                "status": QUEUED,
                "now": now,
                "dedupe_key": dedupe_key,
                "shape": shape,
            },
        )
        return delivery, True

    def get(self, delivery_id: str) -> Delivery | None:
        rows = self.database.query("select * from deliveries where id = :id", {"id": delivery_id})
        return _delivery(rows[0]) if rows else None

    def with_id_prefix(self, prefix: str) -> list[Delivery]:
        """The deliveries whose id starts with ``prefix`` (6 characters at least; at most two returned)."""
        if len(prefix) < 6 or not prefix.isalnum():
            return [found for found in [self.get(prefix)] if found]
        rows = self.database.query(
            "select * from deliveries where id >= :low and id < :high order by id limit 2",
            {"low": prefix.lower(), "high": prefix.lower() + "~"},
        )
        return [_delivery(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each status."""
        rows = self.database.query("select status, count(*) as n from deliveries group by status")
        return {row["status"]: int(row["n"]) for row in rows}

    def claim(self, lease_seconds: float, owner: str, limit: int = 1) -> list[Delivery]:
        """Take up to ``limit`` of the oldest runnable deliveries, in arrival order, and hold them
        for ``lease_seconds``.

        One worker holds a delivery until it ends or its lease runs out (then another takes it
        over), and a delivery waits until every other unfinished one for the same contact id or
        email that came before it, or that is running, has ended: one contact at a time, in
        arrival order, across threads, processes and hosts (so a group never holds two deliveries
        for one known person). Claims are serialised, so two workers never see the same row free.
        The returned deliveries have this attempt counted.
        """
        with self.database.transaction() as tx:
            self.database.serialize_claims(tx)
            now = self.database.now(tx)
            rows = tx.execute(_CLAIMABLE, {"now": now, "limit": limit})
            if not rows:
                return []
            ids, names = in_list("id", "id", [row["id"] for row in rows])
            tx.execute(
                "update deliveries set status = :status, lease_until = :lease, lease_owner = :owner,"
                f" attempts = attempts + 1, updated_at = :now where {ids}",
                {"status": RUNNING, "lease": now + lease_seconds, "owner": owner, "now": now, **names},
            )
            claimed = tx.execute(f"select * from deliveries where {ids} order by created_at, id", names)
        return [_delivery(row) for row in claimed]

    def finish(
        self,
        delivery_id: str,
        status: str,
        result: str,
        user_id: int | None = None,
        *,
        call: str = "",
        code: str = "",
        email: str | None = None,
        run: Run | None = None,
        owner: str,
    ) -> bool:
        """Record how a run of ``call`` ended (``pushing`` included: the push is claimed separately);
        ``False`` (nothing written) when the claim ``owner`` no longer holds it. See ``End``."""
        return self.end([End(delivery_id, status, result, user_id, call, code, email, run, owner)]) == [True]

    def finish_many(
        self,
        outcomes: list[tuple[str, str, str, str]],
        forget_secret: bool = False,
        *,
        call: str = "",
        run: Run | None = None,
        owner: str,
    ) -> int:
        """Record how several pushes ended (id, status, result, code) in one write, and erase their
        sealed passwords in the same write when they have reached Ortto; return how many were
        recorded (those whose lease the claim ``owner`` still holds)."""
        return sum(
            self.end(
                [
                    End(
                        delivery_id, status, result, None, call, code, run=run, owner=owner, forget_secret=forget_secret
                    )
                    for delivery_id, status, result, code in outcomes
                ]
            )
        )

    def end(self, ends: list[End]) -> list[bool]:
        """Record how runs ended, in one write; for each, whether it was recorded (``False``: its
        claim no longer held the lease). A delivery that fails for good loses its sealed password
        at once, whatever the caller says."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            recorded, steps = [], []
            for end in ends:
                run_after = None if end.delay is None else now + end.delay
                tx.execute(
                    "update deliveries set status = :status, result = :result, user_id = coalesce(:user_id, user_id),"
                    " email = coalesce(email, :email),"
                    " secret = case when :forget = 1 or :status = 'failed' then null else secret end,"
                    " run_after = coalesce(:run_after, run_after), lease_until = null, updated_at = :now"
                    " where id = :id" + _HELD,
                    {
                        "status": end.status,
                        "result": end.result,
                        "user_id": end.user_id,
                        "email": end.email,
                        "forget": int(end.forget_secret),
                        "run_after": run_after,
                        "now": now,
                        "id": end.delivery_id,
                        "owner": end.owner,
                    },
                )
                recorded.append(tx.rowcount == 1)
                if recorded[-1]:
                    steps.append(
                        (
                            end.delivery_id,
                            Attempt(now, end.call, end.status, end.result, end.code, run_after, **_timing(end.run)),
                        )
                    )
            _record(tx, steps)
            return recorded

    def claim_pushes(self, limit: int, lease_seconds: float, owner: str) -> list[Delivery]:
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
                tx.execute(
                    "update deliveries set lease_until = :lease, lease_owner = :owner where id = :id",
                    {"lease": now + lease_seconds, "owner": owner, "id": row["id"]},
                )
        return [replace(_delivery(row), lease_owner=owner) for row in rows]

    def push_later(
        self,
        results: dict[str, str],
        delay: float,
        *,
        call: str = "",
        code: str = "",
        run: Run | None = None,
        owner: str,
    ) -> None:
        """Ortto could not take a batch now: try those pushes (delivery id: result) again in ``delay`` s."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            held = {}
            for delivery_id, result in results.items():
                tx.execute(
                    "update deliveries set run_after = :run_after, lease_until = null, attempts = attempts + 1,"
                    " result = :result, updated_at = :now where id = :id" + _HELD,
                    {"run_after": now + delay, "result": result, "now": now, "id": delivery_id, "owner": owner},
                )
                if tx.rowcount == 1:
                    held[delivery_id] = result
            _record(
                tx,
                [
                    (delivery_id, Attempt(now, call, PUSHING, result, code, now + delay, **_timing(run)))
                    for delivery_id, result in held.items()
                ],
            )

    def upcoming_contacts(self, limit: int) -> list[tuple[str, float]]:
        """Contact ids of the next deliveries to run, with their latest arrival or replay (for batched loads)."""
        rows = self.database.query(
            f"select contact_id, max(retry_since) as created_at from deliveries"
            f" where status in ('{QUEUED}', '{RETRYING}') and contact_id is not null"
            " group by contact_id order by min(created_at) limit :limit",
            {"limit": limit},
        )
        return [(row["contact_id"], float(row["created_at"])) for row in rows]

    def retry_later(
        self,
        delivery_id: str,
        delay: float,
        result: str,
        *,
        call: str = "",
        code: str = "",
        email: str | None = None,
        run: Run | None = None,
        owner: str,
    ) -> bool:
        """Give a claimed delivery back, to be claimed again in ``delay`` seconds (``False``: the
        claim ``owner`` no longer holds it, and nothing was written)."""
        return self.end([End(delivery_id, RETRYING, result, None, call, code, email, run, owner, delay)]) == [True]

    def keep_secret(self, delivery_id: str, owner: str, secret: str | None, push_to: str | None = None) -> bool:
        """Keep (or, ``None``, erase) a run's sealed password and the Ortto person it goes to, only
        while the claim ``owner`` holds the delivery; ``False`` (nothing written) when it no longer
        does: a worker that woke after its lease passed must not replace the password of the
        worker that took over, or the password that reaches Ortto would not be the user's."""
        with self.database.transaction() as tx:
            tx.execute(
                "update deliveries set secret = :secret, push_to = coalesce(cast(:push_to as text), push_to),"
                " updated_at = :now where id = :id and lease_owner = :owner",
                {"secret": secret, "push_to": push_to, "now": self.database.now(tx), "id": delivery_id, "owner": owner},
            )
            return tx.rowcount == 1

    def learn(self, delivery_id: str, contact_id: str, email: str | None, owner: str) -> bool:
        """Record the contact id and email a running delivery's contact turned out to have (a
        webhook may name only one), and check again that no other delivery for that person must
        go first, as a claim does. If one must, the delivery goes back to the queue, its attempt
        uncounted, and ``False`` is returned: it runs after the other one."""
        return not self.learn_many([(delivery_id, contact_id, email)], owner)

    def learn_many(self, learned: list[tuple[str, str, str | None]], owner: str) -> set[str]:
        """``learn`` for several deliveries (id, contact id, email) in one write; the ids sent back
        to the queue."""
        deferred: set[str] = set()
        if not learned:
            return deferred
        with self.database.transaction() as tx:
            self.database.serialize_claims(tx)
            now = self.database.now(tx)
            for delivery_id, contact_id, email in learned:
                tx.execute(
                    "update deliveries set contact_id = coalesce(contact_id, :contact_id),"
                    " email = coalesce(email, :email) where id = :id" + _HELD,
                    {"contact_id": contact_id, "email": email, "id": delivery_id, "owner": owner},
                )
            for delivery_id, _, _ in learned:
                blocked = tx.execute(
                    f"select 1 from deliveries where id = :id and (exists ({_BLOCKED_BY.format(person='contact_id')})"
                    f" or exists ({_BLOCKED_BY.format(person='email')}))",
                    {"id": delivery_id, "now": now},
                )
                if blocked:
                    deferred.add(delivery_id)
                    tx.execute(
                        f"update deliveries set status = '{QUEUED}', attempts = attempts - 1, lease_until = null,"
                        " run_after = :now, updated_at = :now where id = :id" + _HELD,
                        {"id": delivery_id, "now": now, "owner": owner},
                    )
        return deferred

    def renew(self, owners: list[str], lease_seconds: float) -> int:
        """Extend the leases these claims hold (a worker renews its own while it works); return how many."""
        if not owners:
            return 0
        held, names = in_list("lease_owner", "owner", owners)
        with self.database.transaction() as tx:
            tx.execute(
                f"update deliveries set lease_until = :until where lease_until is not null and {held}",
                {**names, "until": self.database.now(tx) + lease_seconds},
            )
            return tx.rowcount

    def release(self, owners: list[str]) -> int:
        """End these claims' leases now, so that any worker may take their deliveries at once (a
        worker that stops, or one that found these claims' process dead); return how many."""
        if not owners:
            return 0
        held, names = in_list("lease_owner", "owner", owners)
        with self.database.transaction() as tx:
            tx.execute(f"update deliveries set lease_until = 0 where lease_until is not null and {held}", names)
            return tx.rowcount

    def lease_owners(self, prefix: str) -> list[str]:
        """The claims whose names start with ``prefix`` that hold a live lease."""
        rows = self.database.query(
            f"select distinct lease_owner from deliveries where status in ('{RUNNING}', '{PUSHING}')"
            " and lease_until is not null and lease_until > 0 and substr(lease_owner, 1, :length) = :prefix",
            {"prefix": prefix, "length": len(prefix)},
        )
        return [row["lease_owner"] for row in rows]

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
        return _blocked_for(rows, window, limit)

    def prune(self, keep_seconds: float) -> int:
        """Delete finished deliveries (done, skipped, failed) last changed over ``keep_seconds`` ago,
        with their history, and expired console sessions; return how many deliveries went.
        Unfinished ones are never deleted, however old."""
        with self.database.transaction() as tx:
            tx.execute(
                f"delete from deliveries where status in ('{DONE}', '{SKIPPED}', '{FAILED}') and updated_at < :before",
                {"before": self.database.now(tx) - keep_seconds},
            )
            pruned = tx.rowcount
            if pruned:  # deliveries first, then attempts: the order every transaction keeps
                tx.execute(
                    "delete from attempts where not exists (select 1 from deliveries where id = attempts.delivery_id)"
                )
            tx.execute(
                "delete from operator_actions where at < :before", {"before": self.database.now(tx) - keep_seconds}
            )
            prune_sessions(tx)
            return pruned

    def requeue(self, delivery_id: str, who: str = "an operator") -> bool:
        """Make a failed delivery, or one waiting for a retry, runnable now with a fresh retry
        horizon; ``False`` if it is neither. Its history keeps every earlier attempt, and gains the replay."""
        with self.database.transaction() as tx:
            return self._requeue(tx, [delivery_id], who, self.database.now(tx)) == 1

    def requeue_matching(self, search: Search, who: str, action_id: str, chunk: int = 200) -> int:
        """Replay every failed or retrying delivery matching ``search`` that last changed before
        now, ``chunk`` at a time (each chunk one transaction, so each delivery is replayed whole
        or not at all), counting progress in the operator action ``action_id``."""
        with self.database.transaction() as tx:
            started = self.database.now(tx)  # the clock updated_at is written with
        done = 0
        replayable = replace(search, replayable=True)
        while True:
            with self.database.transaction() as tx:
                where, params = replayable.where()
                rows = tx.execute(
                    f"select id from deliveries where {where} and updated_at < :started"
                    " order by created_at limit :chunk",
                    {**params, "started": started, "chunk": chunk},
                )
                now = self.database.now(tx)
                done += self._requeue(tx, [row["id"] for row in rows], who, now)
                tx.execute(
                    "update operator_actions set done = :done, updated_at = :now,"
                    " finished_at = case when :last = 1 then :now else null end where id = :id",
                    {"done": done, "now": now, "last": int(len(rows) < chunk), "id": action_id},
                )
            if len(rows) < chunk:
                return done
            time.sleep(
                REPLAY_PAUSE
            )  # the process serves its other requests meanwhile (a gevent worker runs one at a time)

    @staticmethod
    def _requeue(tx: Any, ids: list[str], who: str, now: float) -> int:
        replayed = []
        for delivery_id in ids:
            tx.execute(
                "update deliveries set status = :queued, attempts = 0, result = 'replayed', retry_since = :now,"
                f" run_after = :now, updated_at = :now where id = :id and status in ('{FAILED}', '{RETRYING}')",
                {"queued": QUEUED, "now": now, "id": delivery_id},
            )
            if tx.rowcount == 1:
                replayed.append(delivery_id)
        _record(tx, [(delivery_id, Attempt(now, "replay", QUEUED, f"replayed by {who}")) for delivery_id in replayed])
        return len(replayed)

    def history(self, delivery_id: str) -> list[Attempt]:
        """Every recorded step of a delivery, oldest first."""
        rows = self.database.query(
            "select at, call, status, message, code, next_retry, duration, calls from attempts where delivery_id = :id"
            " order by at",
            {"id": delivery_id},
        )
        return [Attempt(**row) for row in rows]

    def find(
        self,
        *,
        status: str | None = None,
        email: str | None = None,
        contact_id: str | None = None,
        since: float | None = None,
        limit: int | None = 20,
        search: Search | None = None,
        offset: int = 0,
    ) -> list[Delivery]:
        """Deliveries matching every filter given, newest first (``limit=None``: all of them)."""
        search = search or Search(status=status, email=email, contact_id=contact_id, since=since)
        where, params = search.where()
        sql = f"select * from deliveries where {where} order by created_at desc, id"
        if limit is not None:
            sql += " limit :limit offset :offset"
            params.update(limit=limit, offset=offset)
        return [_delivery(row) for row in self.database.query(sql, params)]

    def status_of(self, ids: list[str]) -> dict[str, int]:
        """How many of these deliveries are in each status (an import following its own)."""
        counts: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chosen, names = in_list("id", "id", ids[start : start + 500])
            rows = self.database.query(
                f"select status, count(*) as n from deliveries where {chosen} group by status", names
            )
            for row in rows:
                counts[row["status"]] = counts.get(row["status"], 0) + int(row["n"])
        return counts

    def count(self, search: Search) -> int:
        where, params = search.where()
        return int(self.database.query(f"select count(*) as n from deliveries where {where}", params)[0]["n"])

    def overview(self) -> dict[str, Any]:
        """The console's first page: deliveries by status, the oldest waiting, what was applied in
        the last hour, the deliveries that failed in the last day, and each worker's latest heartbeat."""
        now = time.time()
        figures: dict[str, Any] = dict(self.health())
        figures["counts"] = self.counts()
        figures["applied_hour"] = self.count(Search(statuses=(DONE, SKIPPED), changed_since=now - 3600))
        figures["failed_day"] = int(
            self.database.query(  # failed then, whether replayed since or not
                f"select count(distinct delivery_id) as n from attempts where status = '{FAILED}' and at >= :since",
                {"since": now - 86400},
            )[0]["n"]
        )
        figures["workers"] = [
            (row["worker"], float(row["beat_at"]))
            for row in self.database.query(
                "select worker, beat_at from heartbeats where beat_at > :since order by worker", {"since": now - 86400}
            )
        ]
        return figures

    def count_refusals(
        self, counts: dict[str, tuple[int, float]], recent: Sequence[tuple[float, int, str, str]] = ()
    ) -> None:
        """Add refused webhooks by reason (which parameter, which rule; never the value sent):
        how many, and when the last one came; and keep the ``RECENT_REFUSALS`` latest one by one
        (time, HTTP status, reason, client address)."""
        with self.database.transaction() as tx:
            for reason, (count, last) in counts.items():
                tx.execute(
                    "insert into refusals (reason, count, last_at) values (:reason, :count, :last) on conflict (reason)"
                    " do update set count = refusals.count + :count, last_at = case when refusals.last_at > :last then refusals.last_at else :last end",
                    {"reason": reason[:200], "count": count, "last": last},
                )
            for at, status, reason, client in recent[-RECENT_REFUSALS:]:
                tx.execute(
                    "insert into refused_recent (at, status, reason, client) values (:at, :status, :reason, :client)",
                    {"at": at, "status": status, "reason": reason[:200], "client": client[:64]},
                )
            if recent:
                tx.execute(
                    "delete from refused_recent where at < (select at from refused_recent order by at desc"
                    " limit 1 offset :keep)",
                    {"keep": RECENT_REFUSALS - 1},
                )

    def refusals(self) -> list[tuple[str, int, float]]:
        """(reason, how many, last time) for every kind of refused webhook, most frequent first."""
        rows = self.database.query("select reason, count, last_at from refusals order by count desc, reason")
        return [(row["reason"], int(row["count"]), float(row["last_at"])) for row in rows]

    def recent_refusals(self) -> list[dict[str, Any]]:
        """The latest refused webhooks, newest first: at, status, reason, client."""
        return self.database.query(
            "select at, status, reason, client from refused_recent order by at desc limit :n", {"n": RECENT_REFUSALS}
        )

    def start_action(self, who: str, what: str, matched: int = 0, finished: bool = True) -> str:
        """Record what an operator did (or started: ``finished=False``, for a replay in the background)."""
        action_id = uuid.uuid4().hex
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            tx.execute(
                "insert into operator_actions (id, at, who, what, matched, done, finished_at, updated_at)"
                " values (:id, :now, :who, :what, :matched, :done, :finished, :now)",
                {
                    "id": action_id,
                    "now": now,
                    "who": who[:100],
                    "what": what[:500],
                    "matched": matched,
                    "done": matched if finished else 0,
                    "finished": now if finished else None,
                },
            )
        return action_id

    def operator_actions(self, limit: int = 50) -> list[dict[str, Any]]:
        """What operators did, newest first."""
        return self.database.query("select * from operator_actions order by at desc limit :limit", {"limit": limit})

    def operator_action(self, action_id: str) -> dict[str, Any] | None:
        rows = self.database.query("select * from operator_actions where id = :id", {"id": action_id})
        return rows[0] if rows else None

    def failures_since(self, since: float, until: float) -> list[Delivery]:
        """Deliveries that failed for good in (since, until], oldest first (for alerts)."""
        rows = self.database.query(
            f"select * from deliveries where status = '{FAILED}' and updated_at > :since"
            " and updated_at <= :until order by updated_at",
            {"since": since, "until": until},
        )
        return [_delivery(row) for row in rows]

    def mark(self, name: str) -> float | None:
        rows = self.database.query("select value from marks where name = :name", {"name": name})
        return float(rows[0]["value"]) if rows else None

    def move_mark(self, name: str, old: float | None, new: float) -> bool:
        """Set a mark from ``old`` to ``new`` if nobody moved it meanwhile: one process of many wins."""
        with self.database.transaction() as tx:
            if old is None:
                tx.execute(
                    "insert into marks (name, value) values (:name, :new) on conflict (name) do nothing",
                    {"name": name, "new": new},
                )
            else:
                tx.execute(
                    "update marks set value = :new where name = :name and value = :old",
                    {"name": name, "new": new, "old": old},
                )
            return tx.rowcount == 1

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
            f"select max(updated_at) as at from deliveries where status in ('{DONE}', '{SKIPPED}')"
        )[0]["at"]
        waiting = self.database.query(
            f"select count(*) as n, min(created_at) as oldest from deliveries where status in {UNFINISHED}"
        )[0]
        return {
            "now": time.time(),
            "worker_beat": beat,
            "last_applied": applied,
            "waiting": int(waiting["n"]),
            "oldest_waiting": waiting["oldest"],
        }


def _key_table(total: bool) -> str:
    """Where wrong keys are counted: per client (evicted beyond ``MAX_KEY_CLIENTS``), or in total."""
    return "key_totals" if total else "key_failures"


def _blocked_for(rows: list[dict[str, Any]], window: float, limit: int) -> float:
    """Seconds a client's wrong-key row (if any) still blocks it: ``limit`` failures within ``window``."""
    if not rows or rows[0]["failures"] < limit:
        return 0.0
    return max(0.0, rows[0]["window_start"] + window - time.time())


def _record(tx: Any, steps: list[tuple[str, Attempt]]) -> None:
    """Add steps to deliveries' histories. Every transaction writes ``deliveries`` before
    ``attempts`` (and the schema is created in that order), so none waits on the other in a cycle."""
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


def _timing(run: Run | None) -> dict[str, Any]:
    return {"duration": run.duration, "calls": "\n".join(run.calls)} if run else {}


def _delivery(row: dict[str, Any]) -> Delivery:
    data = dict(row)
    data["send_notification"] = bool(data["send_notification"])
    return Delivery(**data)
