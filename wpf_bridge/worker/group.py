"""Runs a claimed group of deliveries in phases, on the thread that claimed it: load their contacts
(one Ortto call per hundred), record who each is for, look everyone up (one request), let each
action decide, write (one request), record how each ended (one store write).

Each action is a generator of steps (``actions.steps``): the group sends what its members ask in
rounds, and hands each member its own answer or error, so no member needs a thread and none waits
for another to reach a barrier. A member that fails (Ortto does not know its contact, WordPress
refuses its write) ends alone; the others go on. A member that needs more (a username already
taken, an email taken since the look-up) asks again in the next round. A group of one is a lone
delivery: each request goes alone, as it comes.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from ..accounts import Contact
from ..actions import ACTIONS, Context, Steps
from ..clients.http import calls_apart
from ..clients.wordpress import WordPressClient
from ..errors import BridgeError, ClaimLost, PermanentError, TransientError
from ..logs import log_context
from ..roles import RoleCache
from ..rules import Outcome, Policy
from ..settings import Settings
from ..store import Store
from ..types import FAILED, RETRYING, Delivery, End
from .batch import Batching, Call, send_together
from .contacts import ContactLoader
from .journal import StoreJournal
from .retry import past_horizon, retry_delay
from .timer import Timer
from .vault import Vault

log = logging.getLogger(__name__)

DEFERRED = "delivery %s waits for an earlier delivery for the same person"


@dataclass
class Member:
    """One delivery of the group and how far it got."""

    delivery: Delivery
    journal: StoreJournal
    timer: Timer
    email: str | None = None  # the contact's, once loaded (recorded with the end)
    waiting: Call | None = None  # the request it waits on in this round
    end: End | None = None


@dataclass
class Group:
    """What a group's run needs: the worker thread's WordPress session and what its process shares."""

    settings: Settings
    store: Store
    wordpress: WordPressClient
    contacts: ContactLoader
    roles: RoleCache
    batching: Batching
    vault: Vault
    policy: Policy = field(init=False)

    def __post_init__(self) -> None:
        self.policy = Policy.of(self.settings)

    def run(self, deliveries: list[Delivery], owner: str) -> list[End]:
        """Apply a claimed group (one delivery per person, in arrival order); how each ended, to record."""
        members = [Member(d, StoreJournal.of(self.store, self.vault, d), Timer(d.action, calls=[])) for d in deliveries]
        running = []
        for member, contact in self._learn(self._load(members), owner):
            context = Context(self.policy, member.journal, self.roles.get)
            steps = ACTIONS[member.delivery.action](member.delivery, contact, context)
            running.append((member, steps))
            self._advance(member, steps, None, None)
        while waiting := [(member, steps, member.waiting) for member, steps in running if member.waiting]:
            send_together(self.wordpress, self.batching, [call for _, _, call in waiting])
            for member, steps, call in waiting:
                member.waiting = None
                member.timer.calls.extend(call.lines)
                self._advance(member, steps, call.result, call.error)
        return [member.end for member in members if member.end is not None]

    def _load(self, members: list[Member]) -> list[tuple[Member, Contact]]:
        """Each member's Ortto contact: a group's in one call (by contact id), then each from that
        (or alone, by email); a member whose contact cannot be loaded ends here."""
        fetched: list[str] = []
        if len(members) > 1:
            with calls_apart() as fetched, contextlib.suppress(BridgeError):  # each meets it again, and records it
                self.contacts.prefetch([member.delivery for member in members])
        loaded = []
        for member in members:
            member.timer.calls.extend(f"{line} ({len(members)} together)" for line in fetched)
            failed = None
            with log_context(member.delivery.id), calls_apart() as sent:
                try:
                    contact = self.contacts.load(member.delivery)
                    member.email = contact.email
                    loaded.append((member, contact))
                except Exception as exc:
                    failed = exc
            member.timer.calls.extend(sent)  # before it ends, so that its history lists them
            if failed:
                self._conclude(member, error=failed)
        return loaded

    def _learn(self, loaded: list[tuple[Member, Contact]], owner: str) -> list[tuple[Member, Contact]]:
        """Record who each delivery is for, in one write (a webhook may name only a contact id or an
        email); one that turns out to follow an unfinished delivery for the same person goes back
        to the queue, uncounted, to run after it. The others, to run now."""
        deferred = self.store.claims.learn_many([(m.delivery.id, c.id, c.email) for m, c in loaded], owner)
        for delivery_id in deferred:
            log.info(DEFERRED, delivery_id)
        return [(member, contact) for member, contact in loaded if member.delivery.id not in deferred]

    def _advance(self, member: Member, steps: Steps, answer: object, error: Exception | None) -> None:
        """Hand a member its answer (or error) and take its next request, or its end."""
        ended, outcome, failed = True, None, None
        with log_context(member.delivery.id), calls_apart() as sent:  # the site's roles, when read
            try:
                member.waiting, ended = Call(steps.throw(error) if error else steps.send(answer)), False
            except StopIteration as stop:
                outcome = stop.value
            except Exception as exc:
                failed = exc
        member.timer.calls.extend(sent)  # before it ends, so that its history lists them
        if ended:
            self._conclude(member, outcome, failed)

    def _conclude(self, member: Member, outcome: Outcome | None = None, error: Exception | None = None) -> None:
        with log_context(member.delivery.id):
            member.end = ending(self.settings, member, outcome, error)


def ending(settings: Settings, member: Member, outcome: Outcome | None, error: Exception | None) -> End | None:
    """How a member's run ended, to record: its outcome, a failure, or a retry when the error may
    pass (``None``: another worker took the delivery over while this one ran; its outcome stands)."""
    delivery, owner, code = member.delivery, member.journal.owner, ""
    if isinstance(error, ClaimLost):
        log.warning("%s", error)
        return None
    if isinstance(error, TransientError) and not past_horizon(delivery.retry_since, settings.retry_horizon):
        delay = retry_delay(delivery.attempts, error)
        result = f"attempt {delivery.attempts}: {error}; retry in {delay:.0f} s"
        run = member.timer.stop(RETRYING)
        return End(delivery.id, RETRYING, result, None, delivery.action, error.code, member.email, run, owner, delay)
    if isinstance(error, TransientError):
        outcome, code = Outcome(FAILED, f"gave up after {delivery.attempts} attempts: {error}"), error.code
    elif isinstance(error, PermanentError):
        outcome, code = Outcome(FAILED, str(error)), error.code
    elif error is not None or outcome is None:
        log.error("delivery %s: unexpected error", delivery.id, exc_info=error)
        outcome = Outcome(FAILED, f"internal error: {type(error).__name__}")
    run = member.timer.stop(outcome.status)
    return End(
        delivery.id, outcome.status, outcome.message, outcome.user_id, delivery.action, code, member.email, run, owner
    )
