"""The delivery store: deliveries, which are also the queue, and what the processes share.

A delivery is committed before the webhook is answered, and workers claim the oldest runnable
row under a lease. Keeping the queue in the records themselves means there is no second entry to
lose or duplicate: a killed web process leaves a whole delivery or none, a killed worker's
delivery becomes claimable again when its lease ends, and a retry is just a later ``run_after``.

The store is split by concern, each part owning its SQL, over one ``Database`` (``database.py``
holds what differs between SQLite and PostgreSQL). Only ``migrations`` changes the schema.
"""

from __future__ import annotations

from .checks import Checks
from .claims import Claims
from .database import Database, StoreUnavailable, connect
from .deliveries import Deliveries
from .figures import Figures
from .history import History
from .ingest import Ingest
from .limits import ClientBlocked, Limits
from .marks import Marks
from .migrations import SchemaBehind, migrate, require_current
from .operators import Operators
from .outbound import Outbound
from .previews import Previews
from .refusals import RECENT_REFUSALS, Refusals
from .retention import Retention
from .runs import Runs
from .search import Search
from .sessions import Sessions
from .trends import Trends

__all__ = [
    "RECENT_REFUSALS",
    "ClientBlocked",
    "SchemaBehind",
    "Search",
    "Store",
    "StoreUnavailable",
    "migrate_store",
]


class Store:
    """Every part of the store over one database. Opening it checks the schema's version and
    changes nothing: ``SchemaBehind`` says to run ``wpf-bridge migrate``."""

    def __init__(self, database_url: str):
        self.database: Database = connect(database_url)
        try:
            require_current(self.database)
        except BaseException:
            self.database.close()
            raise
        self.ingest = Ingest(self.database)
        self.deliveries = Deliveries(self.database)
        self.claims = Claims(self.database)
        self.runs = Runs(self.database)
        self.history = History(self.database)
        self.operators = Operators(self.database)
        self.outbound = Outbound(self.database)
        self.limits = Limits(self.database)
        self.refusals = Refusals(self.database)
        self.figures = Figures(self.database, self.deliveries)
        self.checks = Checks(self.database)
        self.previews = Previews(self.database)
        self.marks = Marks(self.database)
        self.retention = Retention(self.database)
        self.sessions = Sessions(self.database)
        self.trends = Trends(self.database)

    def close(self) -> None:
        """Close its idle connections (and SQLite's lock-file descriptors): a store opened for one look."""
        self.database.close()


def migrate_store(database_url: str) -> list[str]:
    """Apply the migrations the store at ``database_url`` lacks (``wpf-bridge migrate``); their names."""
    database = connect(database_url)
    try:
        return [f"{migration.number:04d}_{migration.name}" for migration in migrate(database)]
    finally:
        database.close()
