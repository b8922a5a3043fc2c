"""Reading deliveries: one, a page of them, counts; what the console, CLI and alerts look at."""

from __future__ import annotations

from ..types import FAILED, QUEUED, RETRYING, Delivery
from .database import Database
from .rows import PUSHED, delivery_from
from .search import Search, in_list


class Deliveries:
    """Reads of the deliveries table; writes belong to ingest, claims, runs and operators."""

    def __init__(self, database: Database):
        self.database = database

    def get(self, delivery_id: str) -> Delivery | None:
        rows = self.database.query("select * from deliveries where id = :id", {"id": delivery_id})
        return delivery_from(rows[0]) if rows else None

    def with_id_prefix(self, prefix: str) -> list[Delivery]:
        """The deliveries whose id starts with ``prefix`` (6 characters at least; at most two returned)."""
        if len(prefix) < 6 or not prefix.isalnum():
            return [found for found in [self.get(prefix)] if found]
        rows = self.database.query(
            "select * from deliveries where id >= :low and id < :high order by id limit 2",
            {"low": prefix.lower(), "high": prefix.lower() + "~"},
        )
        return [delivery_from(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each status."""
        rows = self.database.query("select status, count(*) as n from deliveries group by status")
        return {row["status"]: int(row["n"]) for row in rows}

    def find(
        self,
        *,
        status: str | None = None,
        email: str | None = None,
        contact_id: str | None = None,
        since: float | None = None,
        direction: str | None = None,
        action: str | None = None,
        limit: int | None = 20,
        search: Search | None = None,
        offset: int = 0,
    ) -> list[Delivery]:
        """Deliveries matching every filter given, newest first (``limit=None``: all of them)."""
        search = search or Search(
            status=status, email=email, contact_id=contact_id, since=since, direction=direction, action=action
        )
        where, params = search.where()
        sql = f"select * from deliveries where {where} order by created_at desc, id"
        if limit is not None:
            sql += " limit :limit offset :offset"
            params.update(limit=limit, offset=offset)
        return [delivery_from(row) for row in self.database.query(sql, params)]

    def of_person(self, who: str, limit: int = 500) -> list[Delivery]:
        """Every delivery for the person with this email (any case) or contact id, newest first, both
        ways: those that name it, those that name the person's other identifier (a contact id seen with
        the email, an email seen with the contact id) and those for the WordPress users it became."""
        rows = self.database.query(
            """with named as (
                   select contact_id, lower(email) as email, user_id from deliveries
                   where lower(email) = lower(:who) or contact_id = :who)
               select * from deliveries
               where lower(email) in (select email from named) or contact_id in (select contact_id from named)
                  or user_id in (select user_id from named)
               order by created_at desc, id limit :limit""",
            {"who": who.strip(), "limit": limit},
        )
        return [delivery_from(row) for row in rows]

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

    def upcoming_contacts(self, limit: int) -> list[tuple[str, float]]:
        """Contact ids of the next deliveries to run, with their latest arrival or replay (for batched loads)."""
        rows = self.database.query(
            f"select contact_id, max(retry_since) as created_at from deliveries"
            f" where status in ('{QUEUED}', '{RETRYING}') and contact_id is not null and not {PUSHED}"
            " group by contact_id order by min(created_at) limit :limit",
            {"limit": limit},
        )
        return [(row["contact_id"], float(row["created_at"])) for row in rows]

    def failures_since(self, since: float, until: float) -> list[Delivery]:
        """Deliveries that failed for good in (since, until], oldest first (for alerts)."""
        rows = self.database.query(
            f"select * from deliveries where status = '{FAILED}' and updated_at > :since"
            " and updated_at <= :until order by updated_at",
            {"since": since, "until": until},
        )
        return [delivery_from(row) for row in rows]
