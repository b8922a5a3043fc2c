"""What the overview page adds to the store's figures: the result of ``wpf-bridge check``, run in
the background and cached, as it calls WordPress and Ortto."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ...check import run_checks
from ...redact import redact
from ...settings import Settings

CHECK_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class CheckResult:
    lines: list[tuple[str, str]]  # (ok | FAIL | note, text)
    problems: int
    at: float


class CheckCache:
    """Runs the checks in the background, at most once a minute per web process (or on demand,
    with ``force``), so that a slow or hanging WordPress never holds a web worker that webhooks need."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._result: CheckResult | None = None
        self._running = False
        self._lock = threading.Lock()

    def get(self, force: bool = False) -> CheckResult | None:
        """The latest result (``None`` until the first run ends); starts a run when it is stale."""
        with self._lock:
            stale = force or self._result is None or time.time() - self._result.at > CHECK_CACHE_SECONDS
            if stale and not self._running:
                self._running = True
                threading.Thread(target=self._run, name="wpf-console-check", daemon=True).start()
            return None if force else self._result

    def _run(self) -> None:
        lines = []
        secrets = self.settings.secrets()

        def say(line: str) -> None:
            kind, _, text = line.partition("] ")
            lines.append((kind.lstrip("["), redact(text, secrets)))

        try:
            problems = run_checks(self.settings, say)
            result = CheckResult(lines, problems, time.time())
        except Exception as exc:  # a bug in a check must not leave the page waiting for ever
            result = CheckResult([*lines, ("FAIL", f"the check stopped: {type(exc).__name__}")], 1, time.time())
        with self._lock:
            self._result, self._running = result, False
