"""Ingest: a webhook's delivery written before it is answered, redeliveries recognised.

On PostgreSQL a webhook's whole write is one statement (``wpf_add_delivery``, defined by the
migrations): one round trip. Elsewhere it is one transaction serialised per redelivery key.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from ..types import QUEUED, RETRYING, Delivery
from .database import Database
from .limits import ClientBlocked, blocked_for
from .rows import delivery_from
from .search import in_list


class Ingest:
    """Where the web process (and ``import``) add deliveries."""

    def __init__(self, database: Database):
        self.database = database

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
        waiting_only: bool = False,
    ) -> tuple[Delivery, bool]:
        """Insert a delivery, runnable at once, and return it with ``True``. If a delivery with
        ``dedupe_key`` arrived within ``window`` seconds (and, ``waiting_only``, has not started:
        queued or waiting for a retry), that one is returned with ``False`` and nothing is written: the look-up and the insert are serialised per key in one transaction,
        so simultaneous redeliveries cannot both pass. With ``client``, ``ClientBlocked`` is raised
        instead when that client is over ``key_limit`` (seconds, wrong keys; see ``key_failure``).
        On PostgreSQL all of it is one statement (``_ADD_FUNCTION``): one round trip."""
        delivery_id = uuid.uuid4().hex
        call = (action, contact_id, email, role, send_notification, dedupe_key, window, shape)
        if self.database.functions:
            return self._add_in_one_statement(delivery_id, *call, client, key_limit, waiting_only)
        with self.database.transaction() as tx:
            if client is not None:
                rows = tx.execute(
                    "select window_start, failures from key_failures where client = :client", {"client": client}
                )
                wait = blocked_for(rows, *key_limit)
                if wait:
                    raise ClientBlocked(wait)
            if dedupe_key is not None:
                self.database.serialize_key(tx, dedupe_key)
            return self._insert(tx, self.database.now(tx), delivery_id, *call, waiting_only=waiting_only)

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
        waiting_only: bool,
    ) -> tuple[Delivery, bool]:
        # ``query`` sends it again once on a connection the server had closed: safe, the id makes it idempotent
        [row] = self.database.query(
            "select wpf_add_delivery(:id, :action, :contact_id, :email, :role, :notify, :dedupe_key, :window, :shape,"
            " :client, :client_now, :key_window, :key_limit, :waiting_only) as added",
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
                "waiting_only": waiting_only,
            },
        )
        added = row["added"]
        if "blocked" in added:
            raise ClientBlocked(float(added["blocked"]))
        return delivery_from(added["delivery"]), bool(added["added"])

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
        return keys_seen(self.database.query, keys, time.time() - window)

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
        *,
        waiting_only: bool = False,
    ) -> tuple[Delivery, bool]:
        if dedupe_key is not None:
            rows = tx.execute(
                "select * from deliveries where dedupe_key = :key and created_at > :since"
                + (f" and status in ('{QUEUED}', '{RETRYING}')" if waiting_only else "")
                + " order by created_at limit 1",
                {"key": dedupe_key, "since": now - window},
            )
            if rows:
                return delivery_from(rows[0]), False
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


def keys_seen(run: Callable[[str, dict[str, Any]], list[dict[str, Any]]], keys: list[str], since: float) -> set[str]:
    """Which of these dedupe keys a delivery that arrived since ``since`` carries, read with ``run``
    (the database's ``query``, or a transaction's ``execute`` to read inside it)."""
    seen: set[str] = set()
    for start in range(0, len(keys), 500):
        condition, names = in_list("dedupe_key", "key", keys[start : start + 500])
        rows = run(
            f"select dedupe_key from deliveries where {condition} and created_at > :since", {**names, "since": since}
        )
        seen.update(row["dedupe_key"] for row in rows)
    return seen
