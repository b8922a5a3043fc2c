"""Pushes WordPress's changes to Ortto: the deliveries the outbox puller stored, up to a hundred
people per Ortto call.

A batch is claimed like webhooks' deliveries (one per person, in order, under a lease), each change
decided by the rules (``rules.pushing``), then merged: linked users by person id, new users by email
(a second call reads back which person each email became). A new user is then linked to its person
in WordPress, with the bridge's own credential, so the link is not pushed back. Ortto's refusal of
one person fails that delivery only; Ortto out of reach retries the batch, as webhooks' deliveries.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from ..clients.ortto import MAX_PEOPLE, OrttoClient, Refusal
from ..clients.wordpress import MAX_LOOKUPS, MAX_WRITES, WordPressClient
from ..errors import BridgeError, PermanentError, TransientError
from ..metrics import ATTEMPTS
from ..rules import Policy
from ..rules.pushing import Push, Quiet, decide_push
from ..settings import Settings
from ..store import Store
from ..types import DONE, FAILED, RETRYING, SKIPPED, Delivery, End, Run
from .leases import Leases
from .retry import past_horizon, retry_delay
from .timer import Timer

log = logging.getLogger(__name__)

IDLE_SECONDS = 0.5  # between looks for changes to push when there were none
IDLE_OFF_SECONDS = 10.0  # the same with WordPress -> Ortto off (only changes stored before then are left to end)


class ChangePusher:
    def __init__(
        self, settings: Settings, store: Store, ortto: OrttoClient, wordpress: WordPressClient, leases: Leases
    ):
        self.settings = settings
        self.store = store
        self.ortto = ortto
        self.wordpress = wordpress
        self.leases = leases
        self.policy = Policy.of(settings)

    def push_due(self) -> int:
        """Push up to a hundred due changes; how many deliveries it took."""
        with self.leases.claim() as owner:  # renewed while Ortto and WordPress take their time
            batch = self.store.claims.claim(self.settings.lease_seconds, owner, MAX_PEOPLE, pushes=True)
            if batch:
                self._record(self._push(batch, owner))
            return len(batch)

    def push_until(self, stopping: threading.Event) -> None:
        """The worker's thread for WordPress's changes."""
        idle = IDLE_SECONDS if self.settings.pushes else IDLE_OFF_SECONDS
        while not stopping.is_set():
            try:
                if self.push_due() < MAX_PEOPLE:
                    stopping.wait(idle)
            except Exception:  # the store is down, or a bug: the batch is claimed again after its lease
                log.exception("pushing WordPress's changes failed")
                stopping.wait(IDLE_SECONDS * 4)

    def _push(self, batch: list[Delivery], owner: str) -> list[End]:
        timer = Timer("push")  # the batch's time and requests; each delivery's outcome is counted by its action
        ends: dict[str, End] = {}
        try:
            self._decide_and_merge(batch, owner, ends)
        except TransientError as exc:  # WordPress or Ortto out of reach: whatever has not ended waits
            ends.update(self._later([d for d in batch if d.id not in ends], exc, owner))
        except PermanentError as exc:
            ends.update({d.id: _end(d, owner, FAILED, str(exc), code=exc.code) for d in batch if d.id not in ends})
        run = timer.stop(DONE, 0)
        for delivery in batch:
            ATTEMPTS.labels(delivery.action, ends[delivery.id].status).inc()
        return [_with_run(ends[d.id], run) for d in batch]

    def _decide_and_merge(self, batch: list[Delivery], owner: str, ends: dict[str, End]) -> None:
        """Each change decided on its user as WordPress holds them now (not as when it was pulled:
        a worker that pulled an older copy, or a change that waited, never pushes stale values),
        then merged into Ortto; how each ended goes into ``ends`` as it is known."""
        changes = self.store.outbound.changes([d.id for d in batch])
        links = self.store.outbound.links([d.user_id for d in batch if d.user_id])
        users = sorted({change.user_id for change in changes.values()})
        current = self.wordpress.outbox_users(users) if users else {}
        by_id: dict[str, tuple[Delivery, Push]] = {}
        by_email: dict[str, tuple[Delivery, Push]] = {}
        for delivery in batch:
            change = changes.get(delivery.id)
            if change is None:
                ends[delivery.id] = _end(delivery, owner, SKIPPED, "the change it pushes was not kept")
                continue
            change = replace(change, profile=current.get(change.user_id))
            decided = decide_push(
                change, (change.profile and change.profile.link) or links.get(change.user_id, ""), self.policy
            )
            if isinstance(decided, Quiet):
                ends[delivery.id] = _end(delivery, owner, SKIPPED, decided.reason)
                continue
            same = by_id if decided.person_id else by_email
            key = decided.person_id or decided.email.lower()
            if key in same:  # one person's two changes in one batch: the later waits for the earlier
                ends[delivery.id] = _end(
                    delivery, owner, RETRYING, "waits for an earlier change of the same person", 0.0
                )
            else:
                same[key] = (delivery, decided)
        ends.update(self._by_id(by_id, owner))
        ends.update(self._by_email(by_email, owner))

    def _by_id(self, people: dict[str, tuple[Delivery, Push]], owner: str) -> dict[str, End]:
        if not people:
            return {}
        refused = self.ortto.merge_by_id({pid: _body(push) for pid, (_, push) in people.items()})
        return {
            d.id: _end(d, owner, FAILED, refusal.reason, code=refusal.code)
            if (refusal := refused.get(pid))
            else _end(d, owner, DONE, f"pushed to Ortto person {pid}: {push.describe()}", contact_id=pid)
            for pid, (d, push) in people.items()
        }

    def _by_email(self, people: dict[str, tuple[Delivery, Push]], owner: str) -> dict[str, End]:
        if not people:
            return {}
        merged = self.ortto.merge_by_email({push.email: _body(push) for d, push in people.values()})
        ends, links = {}, []
        for d, push in people.values():
            person = merged.get(push.email)
            if isinstance(person, Refusal) or person is None:
                why = person or Refusal("", "Ortto gave no answer for this person")
                ends[d.id] = _end(d, owner, FAILED, why.reason, code=why.code)
            else:
                links.append((d, push, person))
        taken = self._linked_elsewhere(links)
        for d, push, person in links:
            if d.id in taken:
                ends[d.id] = _end(
                    d,
                    owner,
                    FAILED,
                    f"merged into Ortto person {person} by email, which is linked to WordPress user {taken[d.id]}"
                    f" already: user {push.user_id} not linked (two accounts, one person: give one another email)",
                    code="linked_elsewhere",
                )
        links = [link for link in links if link[0].id not in taken]
        unlinked = self._link(links)
        for d, push, person in links:
            pushed = f"pushed as new to Ortto person {person}: {push.describe()}"
            ends[d.id] = (
                _end(d, owner, FAILED, f"{pushed}; but WordPress did not link user {push.user_id}: {unlinked[d.id]}")
                if d.id in unlinked  # not linked: later changes would not reach the person (a replay links it)
                else _end(d, owner, DONE, f"{pushed}; user {push.user_id} linked", contact_id=person)
            )
        return ends

    def _linked_elsewhere(self, links: list[tuple[Delivery, Push, str]]) -> dict[str, int]:
        """The people of these merges already linked to another WordPress user: that user's id, by
        delivery. One person is never linked to two users (its webhooks would reach both)."""
        taken = {}
        for start in range(0, len(links), MAX_LOOKUPS):
            chunk = links[start : start + MAX_LOOKUPS]
            found = self.wordpress.lookup_many([(person, None) for _, _, person in chunk])
            for (d, push, _), lookup in zip(chunk, found, strict=True):
                holder = lookup.by_contact_id
                if holder is not None and holder.id != push.user_id:
                    taken[d.id] = holder.id
        return taken

    def _link(self, links: list[tuple[Delivery, Push, str]]) -> dict[str, str]:
        """Write each new user's person id in WordPress (``ortto_contact_id``); why each that failed did."""
        failed = {}
        for start in range(0, len(links), MAX_WRITES):
            chunk = links[start : start + MAX_WRITES]
            try:
                results: list = self.wordpress.write_many(
                    [(push.user_id, {"wpf_meta": {"ortto_contact_id": person}}) for _, push, person in chunk]
                )
            except BridgeError as exc:
                results = [exc] * len(chunk)
            for (d, _, _), result in zip(chunk, results, strict=True):
                if isinstance(result, BridgeError):
                    failed[d.id] = str(result)
        return failed

    def _later(self, waiting: list[Delivery], exc: TransientError, owner: str) -> dict[str, End]:
        """The batch could not go: each retries with backoff, within the retry horizon."""
        ends = {}
        for d in waiting:
            if past_horizon(d.retry_since, self.settings.retry_horizon):
                ends[d.id] = _end(d, owner, FAILED, f"gave up: {exc}", code=exc.code)
            else:
                delay = retry_delay(d.attempts, exc)
                ends[d.id] = _end(d, owner, RETRYING, f"{exc}; retry in {delay:.0f} s", delay, code=exc.code)
        return ends

    def _record(self, ends: list[End]) -> None:
        for end, recorded in zip(ends, self.store.runs.end(ends), strict=True):
            if not recorded:
                log.warning("push %s: its lease was lost; another worker runs it", end.delivery_id)
            elif end.status in (FAILED, RETRYING):
                log.warning("push %s %s: %s", end.delivery_id, end.status, end.result)


def _body(push: Push) -> dict:
    body: dict = {"fields": push.fields}
    if push.tags:
        body["tags"] = list(push.tags)
    if push.unset_tags:
        body["unset_tags"] = list(push.unset_tags)
    return body


def _end(
    delivery: Delivery,
    owner: str,
    status: str,
    result: str,
    delay: float | None = None,
    *,
    code: str = "",
    contact_id: str | None = None,
) -> End:
    return End(
        delivery.id,
        status,
        result,
        delivery.user_id,
        delivery.action,
        code,
        owner=owner,
        delay=delay,
        contact_id=contact_id,
    )


def _with_run(end: End, run: Run) -> End:
    return replace(end, run=run)
