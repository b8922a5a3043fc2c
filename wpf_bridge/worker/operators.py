"""Operator work the console asks for, done by a worker: bulk replays, the set-up check and previews.

The web process only records the request, so a replay is not cut off when gunicorn recycles a
web worker, every web process shows the same check, of the same age, and only workers speak to
Ortto and WordPress (a preview reads both). One thread per worker
process looks for requests; a request whose worker died is taken over after its lease.
"""

from __future__ import annotations

import logging
import threading
import time

from ..check import run_checks
from ..errors import BridgeError
from ..preview import preview
from ..redact import redact
from ..settings import Settings
from ..store import Store, StoreUnavailable
from ..store.operators import Replay
from ..store.previews import Preview
from .leases import process_name

log = logging.getLogger(__name__)

POLL = 1.0  # seconds between looks for operator requests
REPLAY_PAUSE = 0.005  # seconds between a bulk replay's transactions
LEASE = 120.0  # seconds a request stays taken without news from its worker (a check may wait on slow peers)


class OperatorWork:
    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.owner = f"{process_name()}|operator"

    def run_once(self) -> bool:
        """Do one waiting request, if any; whether there was one."""
        taken = self.store.operators.take_replay(self.owner, LEASE)
        if taken:
            self.replay(taken)
            return True
        check_id = self.store.checks.take(self.owner, LEASE)
        if check_id:
            lines, problems = self.check()
            self.store.checks.finish(check_id, self.owner, lines, problems)
            return True
        asked = self.store.previews.take(self.owner, LEASE)
        if asked:
            self.store.previews.finish(asked.id, self.owner, self.preview(asked))
            return True
        return False

    def replay(self, taken: Replay) -> None:
        """Replay a request chunk by chunk, pausing between chunks so webhooks get the store's
        write lock (SQLite); stop if another worker took it over (this one was frozen)."""
        replayed = 0
        while True:
            step = self.store.operators.replay_chunk(taken, self.owner, LEASE)
            if step is None:
                log.warning("replay %s: another worker took it over after %d deliveries", taken.action_id, replayed)
                return
            replayed, last = replayed + step[0], step[1]
            if last:
                log.info("replayed %d deliveries for %s", replayed, taken.who)
                return
            time.sleep(REPLAY_PAUSE)

    def check(self) -> tuple[list[tuple[str, str]], int]:
        """``wpf-bridge check``'s lines, redacted, and how many failed."""
        lines: list[tuple[str, str]] = []
        secrets = self.settings.secrets()

        def say(line: str) -> None:
            kind, _, text = line.partition("] ")
            lines.append((kind.lstrip("["), redact(text, secrets)))

        try:
            problems = run_checks(self.settings, say)
        except Exception as exc:  # a bug in a check must not leave the console waiting for ever
            log.exception("the set-up check stopped")
            lines.append(("FAIL", f"the check stopped: {type(exc).__name__}"))
            problems = 1
        return lines, problems

    def preview(self, asked: Preview) -> list[str]:
        """``wpf-bridge preview``'s lines, redacted; a failure is a line that says what failed."""
        try:
            lines = preview(self.settings, asked.person, asked.action, asked.role, asked.notify)
        except BridgeError as exc:
            lines = [f"could not preview: {exc}"]
        except Exception as exc:  # a bug must not leave the page waiting for ever
            log.exception("the preview stopped")
            lines = [f"the preview stopped: {type(exc).__name__}"]
        secrets = self.settings.secrets()
        return [redact(line, secrets) for line in lines]

    def run_until(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                if not self.run_once():
                    stopping.wait(POLL)
            except StoreUnavailable as exc:  # the request is taken over when its lease ends
                log.error("operator work: %s", exc)
                stopping.wait(POLL)
            except Exception:
                log.exception("operator work failed")
                stopping.wait(POLL)
