"""The worker process: threads that claim stored deliveries, apply them (``group``), record how
each ended and when to retry."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass

from ..clients.alerts import AlertClient
from ..clients.http import RateLimiter
from ..clients.ortto import OrttoClient
from ..clients.wordpress import WordPressClient
from ..logs import log_context
from ..roles import RoleCache
from ..settings import Settings
from ..store import Store, StoreUnavailable
from ..types import FAILED, PUSHING, RETRYING, End
from .alerts import Alerts
from .batch import Batching
from .changes import ChangePusher
from .claiming import claim_group
from .contacts import ContactLoader
from .group import Group
from .journal import LEASE_LOST
from .leases import Leases, process_name
from .operators import OperatorWork
from .outbox import OutboxPuller
from .pusher import PasswordPusher
from .vault import Vault

log = logging.getLogger(__name__)

IDLE_POLL = 0.25  # seconds between looks at the store when nothing is runnable
PRUNE_EVERY = 3600.0  # seconds between deletions of deliveries older than WPF_KEEP_DAYS
HEARTBEAT_EVERY = 10.0  # seconds between the worker's "alive" marks in the store (read by /ready)
STORE_DOWN_PAUSE = 2.0  # seconds to wait after the store could not be read or written


@dataclass(frozen=True)
class Shared:
    """What a worker process's threads share: one Ortto rate limit, the batched contact loader,
    the batched password pusher, the site's roles, the leases the process holds and whether the
    site's companion plugin takes batches; when WordPress's changes go to Ortto, the outbox puller
    and the pusher of those changes."""

    contacts: ContactLoader
    pusher: PasswordPusher
    roles: RoleCache
    leases: Leases
    batching: Batching
    changes: ChangePusher
    outbox: OutboxPuller | None = None

    @classmethod
    def build(cls, settings: Settings, store: Store) -> Shared:
        limiter = RateLimiter(settings.ortto_rate_limit)  # one budget; a session each, as they run on different threads
        loader = OrttoClient(settings.ortto_api_url, settings.ortto_api_key, limiter=limiter)
        pusher = OrttoClient(settings.ortto_api_url, settings.ortto_api_key, limiter=limiter)
        wordpress = WordPressClient(*_credentials(settings))
        leases = Leases(store, settings.lease_seconds)
        outbox = OutboxPuller(settings, store, WordPressClient(*_credentials(settings))) if settings.pushes else None
        changes = ChangePusher(  # also with pushes off: changes stored before then end (skipped), not wait for ever
            settings,
            store,
            OrttoClient(settings.ortto_api_url, settings.ortto_api_key, limiter=limiter),
            WordPressClient(*_credentials(settings)),
            leases,
        )
        return cls(
            ContactLoader(loader, store, settings.field_map.ortto_fields()),
            PasswordPusher(settings, store, pusher, leases),
            RoleCache(wordpress.status),
            leases,
            Batching(),
            changes,
            outbox,
        )


def _credentials(settings: Settings) -> tuple[str, str, str]:
    return settings.wordpress_url, settings.wordpress_user, settings.wordpress_app_password


class Runner:
    """Applies the deliveries it claims, with its own WordPress session (one Runner per worker
    thread): one alone, or a group together, in phases (``group``)."""

    def __init__(self, settings: Settings, store: Store, shared: Shared):
        self.settings = settings
        self.store = store
        self.shared = shared
        self.wordpress = WordPressClient(*_credentials(settings))
        self.group = Group(
            settings, store, self.wordpress, shared.contacts, shared.roles, shared.batching, Vault(settings.secret_keys)
        )

    def run_next(self) -> bool:
        """Claim the oldest runnable deliveries (up to a batch, filled while webhooks arrive) and apply
        them; ``False`` when none was runnable."""
        with self.shared.leases.claim() as owner:  # renewed while they run
            group = claim_group(self.store, self.settings, owner)
            if group:
                self.record(self.group.run(group, owner))
            return bool(group)

    def record(self, ends: list[End]) -> None:
        """Write how runs ended, in one write, and log each."""
        if not ends:
            return
        for end, recorded in zip(ends, self.store.runs.end(ends), strict=True):
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
        if sum(end.status == PUSHING for end in ends) > 1:  # a group's passwords, gathered already
            self.shared.pusher.wake()


class Worker:
    """``threads`` loops that each apply one claimed group at a time (one Runner, so one WordPress
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
        background.append(  # WordPress -> Ortto
            threading.Thread(
                target=self.shared.changes.push_until, args=(self.stopping,), name="wpf-changes", daemon=True
            )
        )
        if self.shared.outbox:
            background.append(
                threading.Thread(
                    target=self.shared.outbox.run_until, args=(self.stopping,), name="wpf-outbox", daemon=True
                )
            )
        for thread in [*working, pusher, *background]:
            thread.start()
        log.info("worker started with %d thread(s)", self.threads)
        while not self.stopping.wait(1.0):
            pass
        deadline = time.monotonic() + self.settings.stop_seconds
        for thread in working:
            thread.join(max(0.0, deadline - time.monotonic()))
        applied.set()
        self.shared.pusher.wake()
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
        background[0].join(2.0)  # housekeeping's last beat is in (it wakes at once): the one taken back is the last
        try:  # the console, /ready and check say at once that this worker is gone, not 30 s later
            self.store.marks.gone(process_name())
        except StoreUnavailable as exc:
            log.error("heartbeat not taken back (%s): this worker counts as alive for 30 s more", exc)
        log.info("worker stopped")

    def _stop(self, signum: int, frame: object) -> None:
        log.info("%s: finishing running deliveries, then stopping", signal.Signals(signum).name)
        self.stopping.set()

    def _housekeeping(self) -> None:
        """Mark the worker alive every ``HEARTBEAT_EVERY`` s, report failures to the alert webhook,
        and delete finished deliveries older than ``WPF_KEEP_DAYS`` at start and then hourly, so
        the store does not grow without end (several workers doing it at once is harmless)."""
        name = process_name()
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
