"""Previews the console asks for: what an action would do to a person, worked out by a worker
(which reads Ortto and WordPress) and kept here for the page that asked, for a day."""

from __future__ import annotations

from ..database import Database, Transaction


def apply(tx: Transaction, database: Database) -> None:
    real = database.float_type
    tx.execute(
        f"""create table previews (
            id text primary key,
            asked_at {real} not null,
            asked_by text not null,
            person text not null,
            action text not null,
            role text,
            notify integer not null,
            lease_owner text,
            lease_until {real},
            finished_at {real},
            lines text
        )"""
    )
    tx.execute("create index previews_asked on previews (asked_at)")
