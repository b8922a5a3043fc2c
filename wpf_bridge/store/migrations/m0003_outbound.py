"""WordPress -> Ortto: the change each outbound delivery carries, as the companion plugin's outbox
gave it (the user as WordPress held them when the bridge pulled the change).

A table of its own, not columns of ``deliveries``: the previous release reads deliveries whole
while a new one rolls out, and would not know a new column.
"""

from __future__ import annotations

from ..database import Database, Transaction


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
