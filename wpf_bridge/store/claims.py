"""Claims: which worker runs which delivery, under a lease, one person at a time in arrival order.

A worker claims the oldest runnable rows and holds them under a lease it renews; a delivery
waits while another unfinished one for the same contact id or email came before it or is
running. On PostgreSQL, rows are taken with ``FOR UPDATE SKIP LOCKED``; on SQLite ``begin
immediate`` already makes one writer at a time.
"""

from __future__ import annotations

from dataclasses import replace

from ..types import PUSHING, QUEUED, RETRYING, RUNNING, Delivery
from .database import Database
from .rows import HELD, PUSHED, UNFINISHED, delivery_from
from .search import in_list

# Another delivery for the same person that must end first: an earlier unfinished one, or one
# running under a live lease whatever its order (with several web processes, a delivery can
# commit after a later one has started).
BLOCKED_BY = f"""
    select 1 from deliveries other
    where other.{{person}} = deliveries.{{person}} and other.id != deliveries.id and other.status in {UNFINISHED}
      and (other.created_at < deliveries.created_at
           or (other.created_at = deliveries.created_at and other.id < deliveries.id)
           or (other.status = '{RUNNING}' and other.lease_until >= :now))"""
# Free of any other delivery for the same person, by contact id and by email.
FREE = f"""not exists ({BLOCKED_BY.format(person="contact_id")})
  and not exists ({BLOCKED_BY.format(person="email")})"""
# The oldest delivery that may run now, of one direction: queued or due for retry, or running past
# its lease (its worker died), and free.
CLAIMABLE = f"""
select id, contact_id, email from deliveries
where status in {UNFINISHED} and {{direction}}
  and ((status in ('{QUEUED}', '{RETRYING}') and run_after <= :now) or (status = '{RUNNING}' and lease_until < :now))
  and {FREE}
order by created_at, id
limit :limit"""
# Of the rows a claim took, those still free, read again once their people are held (a
# concurrent claim may have committed meanwhile).
STILL_FREE = f"""
select id from deliveries
where {{ids}}
  and {FREE}"""


class Claims:
    """Taking deliveries to run, and the leases that keep them."""

    def __init__(self, database: Database):
        self.database = database

    def claim(self, lease_seconds: float, owner: str, limit: int = 1, *, pushes: bool = False) -> list[Delivery]:
        """Take up to ``limit`` of the oldest runnable deliveries, in arrival order, and hold them
        for ``lease_seconds``: webhooks' deliveries, or with ``pushes`` those that push WordPress's
        changes to Ortto.

        One worker holds a delivery until it ends or its lease runs out (then another takes it
        over), and a delivery waits until every other unfinished one for the same contact id or
        email that came before it, or that is running, has ended: one contact at a time, in
        arrival order, across threads, processes and hosts (so a group never holds two deliveries
        for one known person). A claim holds the people of the rows it takes until it commits (on
        PostgreSQL an advisory lock per contact id and email, taken without waiting; rows another
        claim holds are skipped), then reads them again: two workers never take the same row, nor
        two rows for one person. On SQLite, ``begin immediate`` lets no other claim in between.
        The returned deliveries have this attempt counted.
        """
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            direction = PUSHED if pushes else f"not {PUSHED}"
            rows = tx.execute(
                CLAIMABLE.format(direction=direction) + self.database.skip_locked, {"now": now, "limit": limit}
            )
            held = [
                row["id"] for row in rows if self.database.hold_people(tx, _people(row["contact_id"], row["email"]))
            ]
            if not held:
                return []
            free = held
            if self.database.claims_overlap:
                ids, names = in_list("id", "id", held)
                free = [row["id"] for row in tx.execute(STILL_FREE.format(ids=ids), {"now": now, **names})]
                if not free:
                    return []
            ids, names = in_list("id", "id", free)
            tx.execute(
                "update deliveries set status = :status, lease_until = :lease, lease_owner = :owner,"
                f" attempts = attempts + 1, updated_at = :now where {ids}",
                {"status": RUNNING, "lease": now + lease_seconds, "owner": owner, "now": now, **names},
            )
            claimed = tx.execute(f"select * from deliveries where {ids} order by created_at, id", names)
        return [delivery_from(row) for row in claimed]

    def claim_pushes(self, limit: int, lease_seconds: float, owner: str) -> list[Delivery]:
        """Take up to ``limit`` deliveries whose password is due to go to Ortto, oldest first."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            rows = tx.execute(
                f"select * from deliveries where status = '{PUSHING}' and run_after <= :now"
                " and (lease_until is null or lease_until < :now) order by created_at, id limit :limit"
                + self.database.skip_locked,
                {"now": now, "limit": limit},
            )
            for row in rows:
                tx.execute(
                    "update deliveries set lease_until = :lease, lease_owner = :owner where id = :id",
                    {"lease": now + lease_seconds, "owner": owner, "id": row["id"]},
                )
        return [replace(delivery_from(row), lease_owner=owner) for row in rows]

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
            # wait for the claims of these people to commit, and hold off new ones until this does
            self.database.hold_people(tx, sorted({p for _, c, e in learned for p in _people(c, e)}), wait=True)
            now = self.database.now(tx)
            for delivery_id, contact_id, email in learned:
                tx.execute(
                    "update deliveries set contact_id = coalesce(contact_id, :contact_id),"
                    " email = coalesce(email, :email) where id = :id" + HELD,
                    {"contact_id": contact_id, "email": email, "id": delivery_id, "owner": owner},
                )
            for delivery_id, _, _ in learned:
                blocked = tx.execute(
                    f"select 1 from deliveries where id = :id and not ({FREE})", {"id": delivery_id, "now": now}
                )
                if blocked:
                    deferred.add(delivery_id)
                    tx.execute(
                        f"update deliveries set status = '{QUEUED}', attempts = attempts - 1, lease_until = null,"
                        " run_after = :now, updated_at = :now where id = :id" + HELD,
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


def _people(contact_id: str | None, email: str | None) -> list[str]:
    """The keys a claim holds for one delivery's person: its contact id and its email."""
    return [key for key in (contact_id and f"c:{contact_id}", email and f"e:{email}") if key]
