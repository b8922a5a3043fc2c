"""Leases that live as long as their worker does.

A claim holds its delivery (or batch of password pushes) for ``WPF_LEASE_SECONDS`` (30 s), and
the worker renews every lease it holds a third of that apart, while its threads wait on a slow
WordPress: a delivery that runs long is never taken over, a killed or frozen worker's are taken
over when they lapse. Faster still, on one host: each claim is named ``host|pid namespace|pid|id``,
and a worker that finds live leases named for a process of its own host that no longer exists
ends them at once (a restarted worker, or the other worker of a ``make run``/systemd host). A
write by a claim whose lease was taken over is refused by the store, so a worker that wakes up
after a freeze cannot overwrite the outcome of the worker that finished its delivery.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from ..store import Store, StoreUnavailable

log = logging.getLogger(__name__)


def host_key() -> str | None:
    """This host and process namespace: processes whose claims share it can see each other's pids."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux: no way to tell a dead process from one in another namespace
        return None
    return f"{socket.gethostname()}|{namespace}"


def process_name() -> str:
    """``host:pid``: this worker process, as its heartbeat and its operator work name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leases:
    def __init__(self, store: Store, lease_seconds: float):
        self.store = store
        self.lease_seconds = lease_seconds
        self.host = host_key()
        self.prefix = f"{self.host or socket.gethostname() + '|?'}|{os.getpid()}|"
        self._held: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def claim(self) -> Iterator[str]:
        """A new claim's name, renewed until the block ends."""
        owner = self.prefix + uuid.uuid4().hex[:12]
        with self._lock:
            self._held.add(owner)
        try:
            yield owner
        finally:
            with self._lock:
                self._held.discard(owner)

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)

    def renew(self) -> int:
        return self.store.claims.renew(self.held(), self.lease_seconds)

    def hand_back(self) -> int:
        """End the leases still held (a stopping worker's): other workers take them over at once."""
        return self.store.claims.release(self.held())

    def end_dead(self) -> int:
        """End the live leases of processes of this host that no longer exist."""
        if self.host is None:
            return 0
        dead = [owner for owner in self.store.claims.lease_owners(self.host + "|") if not _alive(owner)]
        ended = self.store.claims.release(dead)
        if ended:
            log.warning(
                "took over %d deliveries from stopped worker process(es) %s",
                ended,
                ", ".join(sorted({owner.split("|")[2] for owner in dead})),
            )
        return ended

    def keep_alive(self, stopping: threading.Event) -> None:
        """The worker's lease thread: renew, and end dead processes' leases, a third of a lease apart."""
        while True:
            try:
                self.renew()
                self.end_dead()
            except StoreUnavailable as exc:  # a lease may lapse: the store refuses this worker's late writes
                log.error("leases not renewed: %s", exc)
            if stopping.wait(self.lease_seconds / 3):
                return


def _alive(owner: str) -> bool:
    pid = owner.split("|")[2]
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
