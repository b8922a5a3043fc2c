"""Loads the Ortto contacts behind deliveries, a hundred at a time, as a data loader does.

When a worker thread needs a contact that is not at hand, it fetches it together with the
contacts of the next deliveries waiting in the store, in one ``person/get-by-ids``. A cached
contact serves a delivery only if it was fetched after that delivery arrived, so no delivery
sees data older than its webhook. One fetch runs at a time; threads that need it wait for it.
"""

from __future__ import annotations

import threading
import time

from ..accounts import Contact
from ..clients.ortto import MAX_PEOPLE, OrttoClient
from ..errors import PermanentError
from ..store import Store
from ..types import Delivery

KEEP_SECONDS = 600.0  # cached contacts older than this are dropped when the cache is trimmed
TRIM_ABOVE = 5000


class ContactLoader:
    def __init__(self, ortto: OrttoClient, store: Store, fields: list[str]):
        self.ortto = ortto
        self.store = store
        self.fields = fields
        self._cache: dict[str, tuple[float, Contact | None]] = {}  # contact id: (fetched at, contact)
        self._lock = threading.Lock()

    def load(self, delivery: Delivery) -> Contact:
        """The Ortto person behind a delivery: by contact id, else by email; ``PermanentError`` if none."""
        # fetched since it arrived, or since an operator replayed it (a replay must see Ortto's current data)
        contact = self._by_id(delivery.contact_id, delivery.retry_since) if delivery.contact_id else None
        if contact is None and delivery.email:
            contact = self.ortto.find_by_email(delivery.email, self.fields)
        if contact is None:
            who = " or ".join(filter(None, [delivery.contact_id and f"id {delivery.contact_id}", delivery.email]))
            raise PermanentError(f"Ortto has no contact with {who}")
        return contact

    def _fresh(self, contact_id: str, since: float) -> bool:
        hit = self._cache.get(contact_id)
        return hit is not None and hit[0] >= since

    def prefetch(self, deliveries: list[Delivery]) -> None:
        """Fetch the contacts of a claimed group together (claimed deliveries are no longer among
        the waiting ones a fetch fills up with)."""
        with self._lock:
            needed = list(
                dict.fromkeys(
                    d.contact_id for d in deliveries if d.contact_id and not self._fresh(d.contact_id, d.retry_since)
                )
            )
            for start in range(0, len(needed), MAX_PEOPLE):
                self._fetch(needed[start : start + MAX_PEOPLE])

    def _by_id(self, contact_id: str, since: float) -> Contact | None:
        with self._lock:
            if not self._fresh(contact_id, since):
                self._fetch([contact_id])
            return self._cache[contact_id][1]

    def _fetch(self, needed: list[str]) -> None:
        """Fetch ``needed``, filled up with the contacts of the next waiting deliveries."""
        started = time.time()
        ahead = [
            cid
            for cid, arrived in self.store.deliveries.upcoming_contacts(2 * MAX_PEOPLE)
            if cid not in needed and not self._fresh(cid, arrived)
        ]
        batch = [*needed, *ahead[: MAX_PEOPLE - len(needed)]]
        found = self.ortto.get_contacts(batch, self.fields)
        for cid in batch:
            self._cache[cid] = (started, found.get(cid))
        self._trim(started)

    def _trim(self, now: float) -> None:
        if len(self._cache) > TRIM_ABOVE:
            self._cache = {cid: hit for cid, hit in self._cache.items() if hit[0] > now - KEEP_SECONDS}
