"""Outbound: changes pulled from the companion plugin's outbox, stored as deliveries that push them
to Ortto (``push_new``, ``push_profile``, ``push_roles``), and the Ortto person each WordPress user
is known to be linked to.

A change is stored once however often it is pulled (its outbox row is acknowledged only after this
commits, so a pull cut short pulls it again): its delivery's ``dedupe_key`` names the outbox row.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict

from ..accounts import Change
from ..types import DONE, OUTBOX_KINDS, QUEUED
from .database import Database
from .ingest import keys_seen
from .search import in_list

FROM_OUTBOX = "outbox"  # the delivery's ``shape``: where it came from
#: Marks a worker sets at each pull: changes waiting in WordPress's outbox, when the oldest was made, when pulled.
BEHIND, OLDEST, PULLED = "outbox_behind", "outbox_oldest", "outbox_pulled"


def change_key(change: Change) -> str:
    """What identifies one outbox row, even if the site's outbox table is made again (ids restart)."""
    return f"outbox:{change.id}:{change.user_id}:{change.kind}:{change.changed_at}"


class Outbound:
    def __init__(self, database: Database):
        self.database = database

    def add(self, changes: list[Change], window: float) -> int:
        """Store each change not stored within ``window`` seconds as a queued delivery, in the
        outbox's order, in one transaction; return how many were new."""
        if not changes:
            return 0
        with self.database.transaction() as tx:
            self.database.serialize_key(tx, FROM_OUTBOX)
            now = self.database.now(tx)
            keys = [change_key(change) for change in changes]
            seen = keys_seen(tx.execute, keys, now - window)
            added = 0
            for n, (change, key) in enumerate(zip(changes, keys, strict=True)):
                if key in seen:
                    continue
                seen.add(key)
                added += 1
                delivery_id = uuid.uuid4().hex
                profile = change.profile
                at = now + n * 1e-6  # the outbox's order, which the claims keep per person
                tx.execute(
                    "insert into deliveries (id, action, contact_id, email, role, send_notification, status,"
                    " user_id, created_at, updated_at, retry_since, dedupe_key, run_after, shape) values (:id, :action,"
                    " :contact_id, :email, null, 0, :status, :user_id, :at, :at, :at, :key, :at, :shape)",
                    {
                        "id": delivery_id,
                        "action": OUTBOX_KINDS[change.kind],
                        "contact_id": (profile.link or None) if profile else None,
                        "email": profile.email.lower() if profile and profile.email else None,
                        "status": QUEUED,
                        "user_id": change.user_id,
                        "at": at,
                        "key": key,
                        "shape": FROM_OUTBOX,
                    },
                )
                tx.execute(
                    "insert into outbound_changes (delivery_id, change_id, kind, wp_user_id, changed_at, pulled_at,"
                    " snapshot) values (:id, :change_id, :kind, :user_id, :changed_at, :now, :snapshot)",
                    {
                        "id": delivery_id,
                        "change_id": change.id,
                        "kind": change.kind,
                        "user_id": change.user_id,
                        "changed_at": change.changed_at,
                        "now": now,
                        "snapshot": json.dumps(asdict(profile)) if profile else None,
                    },
                )
            return added

    def changes(self, delivery_ids: list[str]) -> dict[str, Change]:
        """The change each of these deliveries pushes, by delivery id, without the user as they were
        when pulled (the stored snapshot): the pusher reads them as WordPress holds them now."""
        if not delivery_ids:
            return {}
        condition, names = in_list("delivery_id", "id", delivery_ids)
        rows = self.database.query(
            f"select delivery_id, change_id, kind, wp_user_id, changed_at from outbound_changes where {condition}",
            names,
        )
        return {
            row["delivery_id"]: Change(
                int(row["change_id"]), row["kind"], int(row["wp_user_id"]), row["changed_at"], None
            )
            for row in rows
        }

    def links(self, user_ids: list[int]) -> dict[int, str]:
        """The Ortto person each of these WordPress users was last applied with, by either direction
        (a user pushed as new is linked here before WordPress is told)."""
        if not user_ids:
            return {}
        condition, names = in_list("user_id", "user", user_ids)
        rows = self.database.query(
            f"select user_id, contact_id from deliveries where {condition} and status = '{DONE}'"
            " and contact_id is not null order by updated_at",
            names,
        )
        return {int(row["user_id"]): row["contact_id"] for row in rows}
