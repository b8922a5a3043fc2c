"""The task queue (Huey): the web process enqueues a delivery id, the worker process runs it.

Huey keeps its queue in the same SQLite file as the delivery records, so one ``DATABASE_URL``
is all a sysadmin configures.
"""
from __future__ import annotations

import logging
import sqlite3
import threading

from huey import SqliteHuey
from huey.api import TaskWrapper
from huey.consumer import Consumer
from huey.exceptions import RetryTask

from .settings import Settings
from .store import Delivery, Store, StoreUnavailable, sqlite_path
from .webhook import WebhookRequest
from .worker import RetryLater, Runner

log = logging.getLogger(__name__)


class DeliveryQueue:
    """Enqueue deliveries (web) or consume them (worker); the runner is only built in the worker."""

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.huey = SqliteHuey("wpf-bridge", filename=str(sqlite_path(settings.database_url)), results=False)
        self._local = threading.local()  # one Runner (and HTTP sessions) per worker thread
        self.task: TaskWrapper = self.huey.task(name="apply_delivery")(self._apply)

    def _apply(self, delivery_id: str) -> None:
        runner = getattr(self._local, "runner", None)
        if runner is None:
            runner = self._local.runner = Runner(self.settings, self.store)
        try:
            runner.run(delivery_id)
        except RetryLater as exc:
            raise RetryTask(str(exc), delay=exc.delay) from None

    def submit(self, call: WebhookRequest) -> tuple[Delivery, bool]:
        """Store a webhook call and queue it in one SQLite transaction: both happen, or neither.

        Huey keeps its queue in the same file, so its task row is written with the delivery's
        (Huey's own message format, through its serializer); a web process killed at any moment
        leaves no stored delivery without its task. A redelivery returns the original and ``False``.
        """
        return self.store.add(
            call.action, call.contact_id, call.email, call.role, call.send_notification,
            dedupe_key=call.dedupe_key, window=call.dedupe_window, then=self._enqueue_in,
        )

    def _enqueue_in(self, db: sqlite3.Connection, delivery_id: str) -> None:
        message = self.huey.serialize_task(self.task.s(delivery_id))
        db.execute("insert into task (queue, data, priority) values (?, ?, ?)", (self.huey.storage.name, message, 0))

    def replay(self, delivery_id: str) -> bool:
        """Run a failed delivery again (queued in the same transaction); ``False`` if it had not failed."""
        return self.store.requeue(delivery_id, then=self._enqueue_in)

    def sweep(self) -> list[str]:
        """Queue again the deliveries a dead worker left behind (see ``Store.release_expired``)."""
        ids = self.store.release_expired(self.settings.lease_seconds, then=self._enqueue_in)
        if ids:
            log.warning("queued again %d deliveries left behind by a stopped worker: %s", len(ids), ", ".join(ids))
        return ids

    def _sweep_until(self, stop: threading.Event) -> None:
        interval = min(self.settings.lease_seconds / 2, 60.0)
        while True:
            try:
                self.sweep()
            except StoreUnavailable as exc:
                log.error("sweep skipped: %s", exc)
            if stop.wait(interval):
                return

    def consume(self, workers: int = 1) -> None:
        """Run the worker loop; SIGTERM (Heroku, honcho) lets running deliveries finish first.

        Beside Huey's consumer, a thread takes over deliveries left running by a killed worker.
        """
        stop = threading.Event()
        sweeper = threading.Thread(target=self._sweep_until, args=(stop,), name="wpf-sweeper", daemon=True)
        sweeper.start()
        try:
            Consumer(self.huey, workers=workers, worker_type="thread", periodic=False, max_delay=1.0, graceful_signal="TERM").run()
        finally:
            stop.set()
