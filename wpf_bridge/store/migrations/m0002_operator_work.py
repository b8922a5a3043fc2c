"""Operator work a worker does: a bulk replay the console asked for, and the set-up check.

The web process records the request and answers; a worker takes it under a lease and stores its
progress and result, so every web process shows the same, and a recycled web worker cuts nothing
off. A replay is an ``operator_actions`` row with its ``search``; a check is a ``checks`` row.
"""

from __future__ import annotations

from ..database import Database, Transaction


def apply(tx: Transaction, database: Database) -> None:
    real = database.float_type
    for column, definition in (("search", "text"), ("lease_owner", "text"), ("lease_until", real)):
        tx.execute(f"alter table operator_actions add column {column} {definition}")
    tx.execute(
        f"""create table checks (
            id text primary key,
            asked_at {real} not null,
            asked_by text not null,
            lease_owner text,
            lease_until {real},
            finished_at {real},
            problems integer,
            lines text
        )"""
    )
    tx.execute("create index checks_finished on checks (finished_at)")
