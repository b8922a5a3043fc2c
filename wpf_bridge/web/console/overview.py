"""What the overview page adds to the store's figures: the result of ``wpf-bridge check`` (cached,
as it calls WordPress and Ortto) and the webhook URLs to paste into Ortto, without the key."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

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
    """Runs the checks at most once a minute per web process (on demand, with ``force``)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._result: CheckResult | None = None
        self._lock = threading.Lock()

    def get(self, force: bool = False) -> CheckResult:
        with self._lock:
            if force or self._result is None or time.time() - self._result.at > CHECK_CACHE_SECONDS:
                self._result = self._run()
            return self._result

    def _run(self) -> CheckResult:
        lines = []
        secrets = self.settings.secrets()

        def say(line: str) -> None:
            kind, _, text = line.partition("] ")
            lines.append((kind.lstrip("["), redact(text, secrets)))

        problems = run_checks(self.settings, say)
        return CheckResult(lines, problems, time.time())


def webhook_urls(settings: Settings, root: str) -> list[tuple[str, str]]:
    """(action, URL) for each action, with the access key left for the operator to add."""
    base = root.rstrip("/")
    urls = []
    for action, extra in (("add", {"role": settings.default_role, "send_notification": "true"}), ("update", {}),
                          ("update_tags", {})):
        urls.append((action, f"{base}/?{urlencode({'wpf_action': action, **extra})}"))
    return urls
