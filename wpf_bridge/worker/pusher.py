"""Return Password: sends the generated passwords of new users to Ortto, a hundred per call.

A worker thread that created a user leaves its delivery ``pushing`` (the password sealed in the
row) and moves on to the next delivery; this pushes every due password in one ``person/merge``
per hundred, at most once per gathering window (a group's passwords, gathered already, go at
once), then records each delivery as done and erases its password in the same write. A crash at any point leaves the rows ``pushing``: the next push
sends the same passwords again, which Ortto simply overwrites.
"""

from __future__ import annotations

import logging
import threading

from ..clients.ortto import MAX_PEOPLE, OrttoClient, Refusal
from ..errors import PermanentError, TransientError
from ..settings import Settings
from ..store import Store
from ..types import DONE, FAILED, PUSHING, Delivery
from .leases import Leases
from .retry import past_horizon, retry_delay
from .timer import Timer
from .vault import Vault

log = logging.getLogger(__name__)

GATHER_SECONDS = 0.5  # how long due passwords may wait for others to share their call
PUSH = "password push"  # the call, in a delivery's history


class PasswordPusher:
    def __init__(self, settings: Settings, store: Store, ortto: OrttoClient, leases: Leases):
        self.settings = settings
        self.store = store
        self.ortto = ortto
        self.leases = leases
        self.vault = Vault(settings.secret_keys)
        self._wake = threading.Event()

    def wake(self) -> None:
        """Push now rather than at the end of the window: a group's passwords came due together, or
        the worker is stopping."""
        self._wake.set()

    def push_due(self) -> int:
        """Push up to a hundred due passwords in one call; return how many deliveries it took."""
        with self.leases.claim() as owner:  # renewed while Ortto takes its time
            return self._push(self.store.claims.claim_pushes(MAX_PEOPLE, self.settings.lease_seconds, owner), owner)

    def _push(self, batch: list[Delivery], owner: str) -> int:
        if not batch:
            return 0
        timer = Timer(PUSH)
        field = self.settings.ortto_password_field or ""  # set: a password waits for Ortto only then
        values, unreadable = {}, {}
        for delivery in batch:
            try:
                if delivery.secret and delivery.push_to:
                    values[delivery.push_to] = self.vault.open(delivery.secret)
            except PermanentError as exc:  # sealed under another WPF_SECRET_KEY
                unreadable[delivery.id] = str(exc)
        try:
            refused = self.ortto.set_field(field, values) if values else {}
        except TransientError as exc:
            self._later(batch, exc, timer, owner)
            return len(batch)
        except PermanentError as exc:
            refused = {person_id: Refusal(exc.code, str(exc)) for person_id in values}
        sent, refusals = [], []
        for delivery in batch:
            refusal = (
                Refusal("", unreadable[delivery.id])
                if delivery.id in unreadable
                else refused.get(delivery.push_to)
                if delivery.push_to in values
                else Refusal("", "no password was kept for it")
            )
            if refusal:
                refusals.append(
                    (
                        delivery.id,
                        FAILED,
                        f"{_created(delivery)}; password not delivered: {refusal.reason}",
                        refusal.code,
                    )
                )
                log.warning(
                    "delivery %s: password not delivered to Ortto person %s: %s",
                    delivery.id,
                    delivery.push_to,
                    refusal.reason,
                )
            else:
                sent.append((delivery.id, DONE, f"{_created(delivery)}; password sent to Ortto {field}", ""))
        run = timer.stop(DONE, len(sent))
        timer.count(FAILED, len(refusals))
        if sent:
            self.store.runs.finish_many(sent, forget_secret=True, call=PUSH, run=run, owner=owner)
            log.info("Ortto saved %d of %d passwords sent in one call", len(sent), len(values))
        if refusals:
            self.store.runs.finish_many(refusals, call=PUSH, run=run, owner=owner)
        return len(batch)

    def _later(self, batch: list[Delivery], exc: TransientError, timer: Timer, owner: str) -> None:
        """Ortto could not take the batch: retry with backoff, within the retry horizon."""
        expired = [d for d in batch if past_horizon(d.retry_since, self.settings.retry_horizon)]
        waiting = [d for d in batch if d not in expired]
        run = timer.stop(FAILED, len(expired))
        timer.count(PUSHING, len(waiting))
        if expired:
            self.store.runs.finish_many(
                [(d.id, FAILED, f"{_created(d)}; password not delivered, gave up: {exc}", exc.code) for d in expired],
                call=PUSH,
                run=run,
                owner=owner,
            )
        if waiting:
            delay = retry_delay(max(d.attempts for d in waiting), exc)
            log.warning("password push for %d deliveries: %s; retry in %.0f s", len(waiting), exc, delay)
            self.store.runs.push_later(
                {d.id: f"{_created(d)}; {PUSH_WAITS} {exc}; retry in {delay:.0f} s" for d in waiting},
                delay,
                call=PUSH,
                code=exc.code,
                run=run,
                owner=owner,
            )

    def push_until(self, stopping: threading.Event) -> None:
        """The worker's pusher loop: push whatever is due, gathering for ``GATHER_SECONDS`` unless woken."""
        while True:
            self._wake.clear()
            try:
                full = self.push_due() == MAX_PEOPLE
            except TransientError as exc:  # the store itself (StoreUnavailable)
                log.error("%s", exc)
                full = False
            except Exception:  # a bug must not stop the pushes: the batch is claimed again after its lease
                log.exception("password push failed")
                full = False
            if stopping.is_set():
                return
            if not full:
                self._wake.wait(GATHER_SECONDS)


PUSH_WAITS = "password push failed:"


def _created(delivery: Delivery) -> str:
    """What the action recorded ("created user 12 (login)"), without an earlier push's failure."""
    return (delivery.result or "").split(f"; {PUSH_WAITS}")[0]
