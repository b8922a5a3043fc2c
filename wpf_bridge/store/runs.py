"""What a claimed run writes: how it ended, a retry, a sealed password kept or erased.

Every write here names its claim (delivery id and owner) and applies only while that claim holds
the lease: a worker that froze and lost its lease writes nothing when it wakes. Times come from
the database's clock (``Database.now``), one clock for every host.
"""

from __future__ import annotations

from ..types import PUSHING, RETRYING, Attempt, End, Run
from .database import Database
from .history import record, timing
from .rows import HELD


class Runs:
    """The only way to write a claimed delivery."""

    def __init__(self, database: Database):
        self.database = database

    def end(self, ends: list[End]) -> list[bool]:
        """Record how runs ended, in one write; for each, whether it was recorded (``False``: its
        claim no longer held the lease). A delivery that fails for good loses its sealed password
        at once, whatever the caller says."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            recorded, steps = [], []
            for end in ends:
                run_after = None if end.delay is None else now + end.delay
                tx.execute(
                    "update deliveries set status = :status, result = :result, user_id = coalesce(:user_id, user_id),"
                    " email = coalesce(email, :email), contact_id = coalesce(:contact_id, contact_id),"
                    " secret = case when :forget = 1 or :status = 'failed' then null else secret end,"
                    " run_after = coalesce(:run_after, run_after), lease_until = null, updated_at = :now"
                    " where id = :id" + HELD,
                    {
                        "status": end.status,
                        "result": end.result,
                        "user_id": end.user_id,
                        "email": end.email,
                        "contact_id": end.contact_id,
                        "forget": int(end.forget_secret),
                        "run_after": run_after,
                        "now": now,
                        "id": end.delivery_id,
                        "owner": end.owner,
                    },
                )
                recorded.append(tx.rowcount == 1)
                if recorded[-1]:
                    steps.append(
                        (
                            end.delivery_id,
                            Attempt(now, end.call, end.status, end.result, end.code, run_after, **timing(end.run)),
                        )
                    )
            record(tx, steps)
            return recorded

    def finish(
        self,
        delivery_id: str,
        status: str,
        result: str,
        user_id: int | None = None,
        *,
        call: str = "",
        code: str = "",
        email: str | None = None,
        run: Run | None = None,
        owner: str,
    ) -> bool:
        """Record how a run of ``call`` ended (``pushing`` included: the push is claimed separately);
        ``False`` (nothing written) when the claim ``owner`` no longer holds it. See ``End``."""
        return self.end([End(delivery_id, status, result, user_id, call, code, email, run, owner)]) == [True]

    def finish_many(
        self,
        outcomes: list[tuple[str, str, str, str]],
        forget_secret: bool = False,
        *,
        call: str = "",
        run: Run | None = None,
        owner: str,
    ) -> int:
        """Record how several pushes ended (id, status, result, code) in one write, and erase their
        sealed passwords in the same write when they have reached Ortto; return how many were
        recorded (those whose lease the claim ``owner`` still holds)."""
        return sum(
            self.end(
                [
                    End(
                        delivery_id, status, result, None, call, code, run=run, owner=owner, forget_secret=forget_secret
                    )
                    for delivery_id, status, result, code in outcomes
                ]
            )
        )

    def retry_later(
        self,
        delivery_id: str,
        delay: float,
        result: str,
        *,
        call: str = "",
        code: str = "",
        email: str | None = None,
        run: Run | None = None,
        owner: str,
    ) -> bool:
        """Give a claimed delivery back, to be claimed again in ``delay`` seconds (``False``: the
        claim ``owner`` no longer holds it, and nothing was written)."""
        return self.end([End(delivery_id, RETRYING, result, None, call, code, email, run, owner, delay)]) == [True]

    def push_later(
        self,
        results: dict[str, str],
        delay: float,
        *,
        call: str = "",
        code: str = "",
        run: Run | None = None,
        owner: str,
    ) -> None:
        """Ortto could not take a batch now: try those pushes (delivery id: result) again in ``delay`` s."""
        with self.database.transaction() as tx:
            now = self.database.now(tx)
            held = {}
            for delivery_id, result in results.items():
                tx.execute(
                    "update deliveries set run_after = :run_after, lease_until = null, attempts = attempts + 1,"
                    " result = :result, updated_at = :now where id = :id" + HELD,
                    {"run_after": now + delay, "result": result, "now": now, "id": delivery_id, "owner": owner},
                )
                if tx.rowcount == 1:
                    held[delivery_id] = result
            record(
                tx,
                [
                    (delivery_id, Attempt(now, call, PUSHING, result, code, now + delay, **timing(run)))
                    for delivery_id, result in held.items()
                ],
            )

    def keep_secret(self, delivery_id: str, owner: str, secret: str | None, push_to: str | None = None) -> bool:
        """Keep (or, ``None``, erase) a run's sealed password and the Ortto person it goes to, only
        while the claim ``owner`` holds the delivery; ``False`` (nothing written) when it no longer
        does: a worker that woke after its lease passed must not replace the password of the
        worker that took over, or the password that reaches Ortto would not be the user's."""
        with self.database.transaction() as tx:
            tx.execute(
                "update deliveries set secret = :secret, push_to = coalesce(cast(:push_to as text), push_to),"
                " updated_at = :now where id = :id and lease_owner = :owner",
                {"secret": secret, "push_to": push_to, "now": self.database.now(tx), "id": delivery_id, "owner": owner},
            )
            return tx.rowcount == 1
