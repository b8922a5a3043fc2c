"""The actions' ``Journal``: a run's sealed password, kept in the delivery's own row through the claim."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ClaimLost
from ..store import Store
from ..types import Delivery
from .vault import Vault

LEASE_LOST = "delivery %s: another worker took it over while this one was frozen or cut off; its outcome stands"


@dataclass
class StoreJournal:
    """Every write goes through the claim ``owner``: a worker that lost its lease writes nothing.
    The password at hand is the one the claim read (``secret``), then whatever this run kept."""

    store: Store
    vault: Vault
    delivery_id: str
    owner: str
    secret: str | None = None  # sealed

    @classmethod
    def of(cls, store: Store, vault: Vault, delivery: Delivery) -> StoreJournal:
        return cls(store, vault, delivery.id, delivery.lease_owner or "", delivery.secret)

    def pending_password(self) -> str | None:
        return self.vault.open(self.secret) if self.secret else None

    def keep_password(self, password: str, person_id: str) -> None:
        self._keep(self.vault.seal(password), person_id)

    def forget_password(self) -> None:
        self._keep(None)

    def _keep(self, secret: str | None, person_id: str | None = None) -> None:
        if not self.store.runs.keep_secret(self.delivery_id, self.owner, secret, person_id):
            raise ClaimLost(LEASE_LOST % self.delivery_id)
        self.secret = secret
