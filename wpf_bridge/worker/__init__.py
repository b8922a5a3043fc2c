"""The worker process: threads that claim stored deliveries, run their action, record the outcome
and decide whether to retry."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass

from ..actions import ACTIONS, Context, Look, Request, Steps
from ..clients.alerts import AlertClient
from ..clients.http import RateLimiter
from ..clients.ortto import OrttoClient
from ..clients.wordpress import WordPressClient
from ..errors import BridgeError, ClaimLost, Deferred, PermanentError, TransientError
from ..logs import log_context
from ..roles import RoleCache
from ..rules import Outcome, Policy
from ..settings import Settings
from ..store import Store, StoreUnavailable
from ..types import FAILED, RETRYING, Delivery, End
from .alerts import Alerts
from .batch import Batching, WordPressBatch
from .contacts import ContactLoader
from .leases import Leases
from .operators import OperatorWork
from .pusher import PasswordPusher
from .retry import past_horizon, retry_delay
from .timer import Timer
from .vault import Vault

log = logging.getLogger(__name__)

IDLE_POLL = 0.25  # seconds between looks at the store when nothing is runnable
PRUNE_EVERY = 3600.0  # seconds between deletions of deliveries older than WPF_KEEP_DAYS
HEARTBEAT_EVERY = 10.0  # seconds between the worker's "alive" marks in the store (read by /ready)
STORE_DOWN_PAUSE = 2.0  # seconds to wait after the store could not be read or written
LEASE_LOST = "delivery %s: another worker took it over while this one was frozen or cut off; its outcome stands"
DEFERRED = "delivery %s waits for an earlier delivery for the same person"


@dataclass
class StoreJournal:
    """The actions' ``Journal``, kept in the delivery's own row (password encrypted)."""

    store: Store
    vault: Vault
    delivery_id: str
    owner: str  # the claim holding the delivery: every write of the run goes through it
    email: str | None = None  # the contact's email, recorded with the outcome
    learned: tuple[str, str | None] | None = None  # (contact id, email) already recorded for its group

    def learn(self, contact_id: str, email: str | None) -> None:
        self.email = email
        if self.learned == (contact_id, email):
            return
        if not self.store.claims.learn(self.delivery_id, contact_id, email, self.owner):
            raise Deferred("another delivery for the same person goes first")

    def pending_password(self) -> str | None:
        delivery = self.store.deliveries.get(self.delivery_id)
        return self.vault.open(delivery.secret) if delivery and delivery.secret else None

    def keep_password(self, password: str, person_id: str) -> None:
        if not self.store.runs.keep_secret(self.delivery_id, self.owner, self.vault.seal(password), person_id):
            raise ClaimLost(LEASE_LOST % self.delivery_id)

    def forget_password(self) -> None:
        if not self.store.runs.keep_secret(self.delivery_id, self.owner, None):
            raise ClaimLost(LEASE_LOST % self.delivery_id)


@dataclass(frozen=True)
class Shared:
    """What a worker process's threads share: one Ortto rate limit, the batched contact loader,
    the batched password pusher, the site's roles, the leases the process holds and whether the
    site's companion plugin takes batches."""

    contacts: ContactLoader
    pusher: PasswordPusher
    roles: RoleCache
    leases: Leases
    batching: Batching

    @classmethod
    def build(cls, settings: Settings, store: Store) -> Shared:
        limiter = RateLimiter(settings.ortto_rate_limit)  # one budget; a session each, as they run on different threads
        loader = OrttoClient(settings.ortto_api_url, settings.ortto_api_key, limiter=limiter)
        pusher = OrttoClient(settings.ortto_api_url, settings.ortto_api_key, limiter=limiter)
        wordpress = WordPressClient(settings.wordpress_url, settings.wordpress_user, settings.wordpress_app_password)
        leases = Leases(store, settings.lease_seconds)
        return cls(
            ContactLoader(loader, store, settings.field_map.ortto_fields()),
            PasswordPusher(settings, store, pusher, leases),
            RoleCache(wordpress.status),
            leases,
            Batching(),
        )


class Runner:
    """Applies the deliveries it claims, with its own WordPress session (one Runner per worker
    thread): one alone, or several together, their WordPress requests batched (``batch``)."""

    def __init__(self, settings: Settings, store: Store, shared: Shared):
        self.settings = settings
        self.store = store
        self.shared = shared
        self.vault = Vault(settings.secret_keys)
        self.policy = Policy.of(settings)
        self.wordpress = WordPressClient(
            settings.wordpress_url, settings.wordpress_user, settings.wordpress_app_password
        )

    def run(
        self, delivery: Delivery, wordpress: WordPressBatch | None = None, learned: tuple[str, str | None] | None = None
    ) -> End | None:
        """Apply one claimed delivery; how it ended, or when to try it again, to record (``None``:
        it went back to the queue behind another delivery for the same person, or another worker
        took it over while this one ran)."""
        journal = StoreJournal(self.store, self.vault, delivery.id, delivery.lease_owner or "", learned=learned)
        ctx = Context(self.policy, journal, self.shared.roles.get)
        code = ""
        timer = Timer(delivery.action)
        with log_context(delivery.id):
            try:
                contact = self.shared.contacts.load(delivery)
                journal.learn(contact.id, contact.email)
                outcome = drive(ACTIONS[delivery.action](delivery, contact, ctx), wordpress or self.wordpress)
            except Deferred:
                log.info(DEFERRED, delivery.id)
                return None
            except ClaimLost as exc:
                log.warning("%s", exc)
                return None
            except TransientError as exc:
                if past_horizon(delivery.retry_since, self.settings.retry_horizon):
                    outcome, code = Outcome(FAILED, f"gave up after {delivery.attempts} attempts: {exc}"), exc.code
                else:
                    delay = retry_delay(delivery.attempts, exc)
                    return End(
                        delivery.id,
                        RETRYING,
                        f"attempt {delivery.attempts}: {exc}; retry in {delay:.0f} s",
                        None,
                        delivery.action,
                        exc.code,
                        journal.email,
                        timer.stop(RETRYING),
                        delivery.lease_owner,
                        delay,
                    )
            except PermanentError as exc:
                outcome, code = Outcome(FAILED, str(exc)), exc.code
            except Exception as exc:
                log.exception("delivery %s: unexpected error", delivery.id)
                outcome = Outcome(FAILED, f"internal error: {type(exc).__name__}")
            return End(
                delivery.id,
                outcome.status,
                outcome.message,
                outcome.user_id,
                delivery.action,
                code,
                journal.email,
                timer.stop(outcome.status),
                delivery.lease_owner,
            )

    def run_next(self) -> bool:
        """Claim the oldest runnable deliveries (up to a batch) and apply them; ``False`` when none was runnable."""
        with self.shared.leases.claim() as owner:  # renewed while they run
            group = self.store.claims.claim(self.settings.lease_seconds, owner, limit=self.settings.batch_size)
            if len(group) == 1:
                self.record([self.run(group[0])])
            elif group:
                self.run_together(group, owner)
            return bool(group)

    def run_together(self, group: list[Delivery], owner: str) -> None:
        """Apply a group of deliveries at once, each on a thread of its own, their WordPress requests
        sent together, each ending as if it had run alone. The store is written once for the group
        before (who each delivery is for, as far as the contacts are known) and once after (how each
        ended), not several times per delivery."""
        with contextlib.suppress(BridgeError):  # Ortto refused or is down: each delivery meets it again and records it
            self.shared.contacts.prefetch(group)
        known = {d.id: (c.id, c.email) for d in group if (c := self.shared.contacts.cached(d)) is not None}
        deferred = self.store.claims.learn_many([(d_id, *who) for d_id, who in known.items()], owner)
        for delivery_id in deferred:
            log.info(DEFERRED, delivery_id)
        group = [d for d in group if d.id not in deferred]
        batch = WordPressBatch(self.wordpress, len(group), self.shared.batching)
        ends: list[End | None] = [None] * len(group)
        members = [
            threading.Thread(
                target=self._member,
                args=(n, delivery, batch, known.get(delivery.id), ends),
                name=f"{threading.current_thread().name}-{n}",
                daemon=True,
            )
            for n, delivery in enumerate(group)
        ]
        for member in members:
            member.start()
        for member in members:
            member.join()
        self.record(ends)

    def _member(
        self,
        rank: int,
        delivery: Delivery,
        batch: WordPressBatch,
        learned: tuple[str, str | None] | None,
        ends: list[End | None],
    ) -> None:
        batch.join(rank)
        try:
            ends[rank] = self.run(delivery, batch, learned)
        except Exception:  # the store is down, or a bug: the delivery is taken over after its lease
            log.exception("delivery %s: not recorded", delivery.id)
        finally:
            batch.leave()

    def record(self, ends: list[End | None]) -> None:
        """Write how runs ended, in one write, and log each."""
        ended = [end for end in ends if end is not None]
        if not ended:
            return
        for end, recorded in zip(ended, self.store.runs.end(ended), strict=True):
            with log_context(end.delivery_id):
                if not recorded:
                    log.warning(LEASE_LOST, end.delivery_id)
                elif end.status == RETRYING:
                    log.warning("delivery %s %s", end.delivery_id, end.result)
                else:
                    log.log(
                        logging.WARNING if end.status == FAILED else logging.INFO,
                        "delivery %s %s: %s",
                        end.delivery_id,
                        end.status,
                        end.result,
                    )


def drive(steps: Steps, wordpress: WordPressClient | WordPressBatch) -> Outcome:
    """Run an action's steps to their outcome, each request sent as it comes."""
    answer, error = None, None
    while True:
        try:
            request = steps.throw(error) if error else steps.send(answer)
        except StopIteration as stop:
            return stop.value
        answer, error = None, None
        try:
            answer = ask(wordpress, request)
        except Exception as exc:  # the action's to handle, or to raise as it is
            error = exc


def ask(wordpress: WordPressClient | WordPressBatch, request: Request) -> object:
    if isinstance(request, Look):
        return wordpress.lookup(request.contact_id, request.email)
    if request.user_id:
        return wordpress.update_user(request.user_id, request.values)
    return wordpress.create_user(request.values)


class Worker:
    """``threads`` loops that each apply one delivery at a time (one Runner, so one WordPress
    session per thread), beside one thread pushing passwords to Ortto in batches and one pruning
    old deliveries. SIGTERM or SIGINT stops claiming; running deliveries finish and due passwords
    are pushed first."""

    def __init__(self, settings: Settings, store: Store, threads: int):
        self.settings = settings
        self.store = store
        self.threads = threads
        self.shared = Shared.build(settings, store)
        self.stopping = threading.Event()
        self.alerts = (
            Alerts(store, AlertClient(settings.alert_webhook), settings.secrets()) if settings.alert_webhook else None
        )

    def run(self) -> None:
        """Work until SIGTERM or SIGINT, then give running deliveries ``WPF_STOP_SECONDS`` (20) to end;
        hand the rest back (their leases end at once, so another worker takes them now, not after
        a lease) and return, so the process exits 0 in bounded time."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        working = [
            threading.Thread(target=self._loop, name=f"wpf-worker-{n}", daemon=True) for n in range(self.threads)
        ]
        applied = threading.Event()  # every delivery thread has ended: the pusher makes its last push
        pusher = threading.Thread(target=self.shared.pusher.push_until, args=(applied,), name="wpf-pusher", daemon=True)
        background = [
            threading.Thread(target=self._housekeeping, name="wpf-housekeeping", daemon=True),
            threading.Thread(
                target=self.shared.leases.keep_alive, args=(self.stopping,), name="wpf-leases", daemon=True
            ),
            threading.Thread(
                target=OperatorWork(self.settings, self.store).run_until,
                args=(self.stopping,),
                name="wpf-operator-work",
                daemon=True,
            ),
        ]
        for thread in [*working, pusher, *background]:
            thread.start()
        log.info("worker started with %d thread(s)", self.threads)
        while not self.stopping.wait(1.0):
            pass
        deadline = time.monotonic() + self.settings.stop_seconds
        for thread in working:
            thread.join(max(0.0, deadline - time.monotonic()))
        applied.set()
        pusher.join(max(0.0, deadline - time.monotonic()))
        try:
            handed = self.shared.leases.hand_back()
        except StoreUnavailable as exc:
            handed = 0
            log.error("running deliveries not handed back (%s): taken over when their leases lapse", exc)
        if handed:
            log.warning(
                "handed %d running deliveries back to the other workers after %g s", handed, self.settings.stop_seconds
            )
        log.info("worker stopped")

    def _stop(self, signum: int, frame: object) -> None:
        log.info("%s: finishing running deliveries, then stopping", signal.Signals(signum).name)
        self.stopping.set()

    def _housekeeping(self) -> None:
        """Mark the worker alive every ``HEARTBEAT_EVERY`` s, report failures to the alert webhook,
        and delete finished deliveries older than ``WPF_KEEP_DAYS`` at start and then hourly, so
        the store does not grow without end (several workers doing it at once is harmless)."""
        name = f"{socket.gethostname()}:{os.getpid()}"
        pruned_at = None
        while not self.stopping.is_set():
            try:
                self.store.marks.beat(name)
                if self.alerts:
                    self.alerts.check()
                if pruned_at is None or time.monotonic() - pruned_at >= PRUNE_EVERY:
                    pruned_at = time.monotonic()
                    pruned = self.store.retention.prune(self.settings.keep_seconds)
                    if pruned:
                        log.info(
                            "deleted %d finished deliveries older than %g days",
                            pruned,
                            self.settings.keep_seconds / 86400,
                        )
            except Exception:  # the store is down, or a bug: try again at the next round
                log.exception("housekeeping failed")
            self.stopping.wait(HEARTBEAT_EVERY)

    def _loop(self) -> None:
        runner = Runner(self.settings, self.store, self.shared)
        while not self.stopping.is_set():
            try:
                if not runner.run_next():
                    self.stopping.wait(IDLE_POLL)
            except StoreUnavailable as exc:  # a delivery left running is taken over when its lease ends
                log.error("%s", exc)
                self.stopping.wait(STORE_DOWN_PAUSE)
            except Exception:  # a bug must not end the thread: its delivery is taken over after the lease
                log.exception("worker thread error")
                self.stopping.wait(STORE_DOWN_PAUSE)
