"""Applies one stored delivery: runs its action, records the outcome, decides whether to retry."""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from .actions import ACTIONS, Context, Outcome
from .errors import PermanentError, TransientError
from .ortto import OrttoClient
from .settings import Settings
from .store import FAILED, RETRYING, Delivery, Store
from .vault import Vault
from .wordpress import WordPressClient

log = logging.getLogger(__name__)

FIRST_RETRY = 5.0  # seconds
MAX_RETRY_DELAY = 3600.0
WAIT_IN_THREAD = 5.0  # seconds a thread waits for an earlier delivery for the same person
WAIT_FOR_EARLIER = 1.0  # then: retry after this many seconds


class RetryLater(Exception):
    """Raised to the queue: run this delivery again in ``delay`` seconds."""

    def __init__(self, delay: float):
        super().__init__(f"retry in {delay:.0f} s")
        self.delay = delay


@dataclass
class StoreJournal:
    """The actions' ``Journal``, kept in the delivery's own row (password encrypted)."""

    store: Store
    vault: Vault
    delivery_id: str

    def pending_password(self) -> str | None:
        delivery = self.store.get(self.delivery_id)
        return self.vault.open(delivery.secret) if delivery and delivery.secret else None

    def keep_password(self, password: str) -> None:
        self.store.update(self.delivery_id, secret=self.vault.seal(password))

    def user_created(self, user_id: int) -> None:
        self.store.update(self.delivery_id, user_id=user_id)

    def forget_password(self) -> None:
        self.store.update(self.delivery_id, secret=None)


class Runner:
    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.vault = Vault(settings.secret_key)
        self.wordpress = WordPressClient(settings.wordpress_url, settings.wordpress_user, settings.wordpress_app_password)
        self.ortto = OrttoClient(settings.ortto_api_url, settings.ortto_api_key)

    def run(self, delivery_id: str) -> None:
        """Apply one delivery; raise ``RetryLater`` when a peer failed in a way worth retrying."""
        delivery = self._claim(delivery_id)
        if delivery is None:
            return
        attempts = delivery.attempts
        ctx = Context(self.settings, self.wordpress, self.ortto, StoreJournal(self.store, self.vault, delivery_id))
        try:
            outcome = ACTIONS[delivery.action](delivery, ctx)
        except TransientError as exc:
            if time.time() - delivery.retry_since >= self.settings.retry_horizon:
                self._finish(delivery_id, Outcome(FAILED, f"gave up after {attempts} attempts: {exc}"))
                return
            delay = max(backoff(attempts), exc.retry_after or 0.0)
            self.store.update(delivery_id, status=RETRYING, result=f"attempt {attempts}: {exc}; retry in {delay:.0f} s")
            log.warning("delivery %s attempt %d: %s; retry in %.0f s", delivery_id, attempts, exc, delay)
            raise RetryLater(delay) from None
        except PermanentError as exc:
            outcome = Outcome(FAILED, str(exc))
        except Exception as exc:
            log.exception("delivery %s: unexpected error", delivery_id)
            outcome = Outcome(FAILED, f"internal error: {type(exc).__name__}")
        self._finish(delivery_id, outcome)

    def _claim(self, delivery_id: str) -> Delivery | None:
        """Claim the delivery; while an earlier one for the same person runs, wait a little here
        (the next in line starts within ~50 ms), then give the thread back and retry later."""
        deadline = time.monotonic() + WAIT_IN_THREAD
        while True:
            delivery = self.store.claim(delivery_id, self.settings.lease_seconds)
            if delivery is not None or not self.store.waiting(delivery_id):
                return delivery
            if time.monotonic() > deadline:
                raise RetryLater(WAIT_FOR_EARLIER)
            time.sleep(0.05)

    def _finish(self, delivery_id: str, outcome: Outcome) -> None:
        values: dict = {"status": outcome.status, "result": outcome.message}
        if outcome.user_id is not None:
            values["user_id"] = outcome.user_id
        self.store.update(delivery_id, **values)
        log.info("delivery %s %s: %s", delivery_id, outcome.status, outcome.message)


def backoff(attempts: int) -> float:
    """Exponential backoff with full jitter: about 5 s, 10 s, 20 s ... capped at an hour."""
    ceiling = min(MAX_RETRY_DELAY, FIRST_RETRY * 2 ** (attempts - 1))
    return random.uniform(ceiling / 2, ceiling)
