"""WordPress -> Ortto: the change each outbound delivery carries, as the companion plugin's outbox
gave it (the user as WordPress held them when the bridge pulled the change). And on PostgreSQL,
a webhook's write that counts an identical call as a repeat only while it waits (``p_waiting_only``).

A table of its own, not columns of ``deliveries``: the previous release reads deliveries whole
while a new one rolls out, and would not know a new column. The webhook's function gains a
parameter as a new overload: the previous release still calls the one it knows.
"""

from __future__ import annotations

from ..database import Database, Transaction
from .m0001_baseline import _ADD_FUNCTION

_WAITING = "created_at > v_now - p_window"
_ADD_WAITING_ONLY = _ADD_FUNCTION.replace(
    "p_key_window double precision, p_key_limit integer)",
    "p_key_window double precision, p_key_limit integer, p_waiting_only boolean)",
).replace(_WAITING, f"{_WAITING}\n            and (not p_waiting_only or status in ('queued', 'retrying'))")


def apply(tx: Transaction, database: Database) -> None:
    tx.execute(
        f"""create table outbound_changes (
            delivery_id text primary key,
            change_id bigint not null,
            kind text not null,
            wp_user_id bigint not null,
            changed_at text not null,
            pulled_at {database.float_type} not null,
            snapshot text
        )"""
    )
    tx.execute("create index outbound_changes_user on outbound_changes (wp_user_id)")
    tx.execute("create index deliveries_user on deliveries (user_id)")  # a user's link, and their story
    if database.functions:
        tx.execute(_ADD_WAITING_ONLY)
