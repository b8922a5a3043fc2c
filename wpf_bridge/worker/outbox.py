"""Pulls the companion plugin's outbox (WordPress -> Ortto) into the store.

The worker asks WordPress for the recorded changes, stores each as a delivery (once, however often
it is pulled) and only then acknowledges them, which removes them from the outbox: a worker killed
between the two pulls the same changes again and stores nothing twice. WordPress never has to reach
the bridge, and nothing depends on WP-Cron. How far behind the outbox is goes to the store's marks,
for ``check``, the console and ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time

from ..clients.wordpress import MAX_CHANGES, WordPressClient, WordPressError
from ..settings import Settings
from ..store import Store
from ..store.outbound import BEHIND, OLDEST, PULLED
from ..types import OUTBOX_KINDS

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # between pulls of an outbox that had nothing more
MAX_PAUSE = 60.0  # longest wait after a failed pull (doubling from POLL_SECONDS)
MISSING_TABLE = "wpf_bridge_outbox_table"  # the plugin's code when its table is gone: say what to watch again


class OutboxPuller:
    def __init__(self, settings: Settings, store: Store, wordpress: WordPressClient):
        self.settings = settings
        self.store = store
        self.wordpress = wordpress
        self.watching = False

    def watch(self) -> None:
        """Tell the plugin what this bridge pushes (the settings may have changed since it last asked)."""
        columns, meta = self.settings.field_map.watched()
        profile = self.settings.push_profile_changes
        self.wordpress.outbox_watch(
            self.settings.push_new_users,
            bool(self.settings.field_map.tag_roles),
            columns if profile else [],
            meta if profile else [],
        )
        self.watching = True

    def pull(self) -> int:
        """Store one page of recorded changes, acknowledge it; how many changes it held."""
        if not self.watching:
            self.watch()
        try:
            changes, behind, oldest = self.wordpress.outbox_pull(MAX_CHANGES)
        except WordPressError as exc:
            if exc.code == MISSING_TABLE:
                self.watching = False
            raise
        unknown = [change for change in changes if change.kind not in OUTBOX_KINDS]
        if unknown:  # a newer plugin's kind of change: acknowledged, or it would hold up the outbox
            log.warning(
                "WordPress's outbox holds %d change(s) of a kind this bridge does not know (%s): upgrade the bridge",
                len(unknown),
                ", ".join(sorted({c.kind for c in unknown}))[:200],
            )
        added = self.store.outbound.add([c for c in changes if c.kind in OUTBOX_KINDS], self.settings.keep_seconds)
        removed = self.wordpress.outbox_ack([change.id for change in changes]) if changes else 0
        if added:
            log.info(
                "stored %d change(s) from WordPress's outbox (%d were stored already)", added, len(changes) - added
            )
        self.store.marks.set(
            {BEHIND: max(0, behind - removed), OLDEST: oldest if changes else 0.0, PULLED: time.time()}
        )
        return len(changes)

    def run_until(self, stopping: threading.Event) -> None:
        """The worker's outbox thread: pull while there is more, then every ``POLL_SECONDS``; after a
        failure, wait longer each time (the site or the network is down: nothing is lost meanwhile)."""
        pause = POLL_SECONDS
        while not stopping.is_set():
            try:
                full = self.pull() == MAX_CHANGES
                pause = POLL_SECONDS
            except Exception as exc:  # WordPress or the store is down, or a bug: the changes wait in the outbox
                log.error("could not pull WordPress's outbox: %s; next try in %.0f s", exc, pause)
                stopping.wait(pause)
                pause = min(MAX_PAUSE, pause * 2)
                continue
            if not full:
                stopping.wait(POLL_SECONDS)
