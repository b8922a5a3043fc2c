"""Numbered schema migrations, applied in order by ``wpf-bridge migrate`` and by nothing else.

Each ``mNNNN_name.py`` module here changes the schema once, through its ``apply(tx, database)``,
and is recorded in ``schema_migrations`` in the same transaction, so a migration is applied whole
or not at all, and never twice. Other processes only read the version: one that finds the schema
behind refuses to start and says what to run. A newer schema is accepted (migrations add, so the
code still running during a release keeps working). A migration, once released, never changes.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..database import Database, StoreUnavailable, Transaction

_MODULE = re.compile(r"m(\d{4})_(\w+)")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    apply: Callable[[Transaction, Database], None]


class SchemaBehind(StoreUnavailable):
    """The store's schema is older than this code: ``wpf-bridge migrate`` brings it up to date."""


def migrations() -> list[Migration]:
    """Every migration this code knows, in order."""
    found = []
    for module in pkgutil.iter_modules(__path__):
        match = _MODULE.fullmatch(module.name)
        if match:
            loaded = importlib.import_module(f"{__name__}.{module.name}")
            found.append(Migration(int(match[1]), match[2], loaded.apply))
    return sorted(found, key=lambda migration: migration.number)


LATEST = migrations()[-1].number


def version(database: Database) -> int:
    """The newest migration applied to this store (0: none, an empty store or one made before numbering)."""
    if not database.has_table("schema_migrations"):
        return 0
    return int(database.query("select coalesce(max(number), 0) as n from schema_migrations")[0]["n"])


def migrate(database: Database) -> list[Migration]:
    """Apply the migrations this store lacks, each in its own transaction; return those applied.
    Processes started together (dynos) take turns: the first applies, the others find nothing left."""
    applied = []
    for migration in migrations():
        with database.transaction() as tx:
            database.prepare(tx)  # one migrating process at a time
            tx.execute(
                "create table if not exists schema_migrations"
                f" (number integer primary key, name text not null, applied_at {database.float_type} not null)"
            )
            if tx.execute("select 1 from schema_migrations where number = :n", {"n": migration.number}):
                continue
            migration.apply(tx, database)
            tx.execute(
                "insert into schema_migrations (number, name, applied_at) values (:n, :name, :at)",
                {"n": migration.number, "name": migration.name, "at": time.time()},
            )
            applied.append(migration)
    return applied


def require_current(database: Database) -> None:
    """Raise ``SchemaBehind`` unless every migration this code knows has been applied."""
    found = version(database)
    if found < LATEST:
        raise SchemaBehind(
            f"the delivery store's schema is at version {found}, this wpf-bridge needs {LATEST}:"
            " run `wpf-bridge migrate` (Heroku's release step and the systemd migrate unit run it)"
        )
