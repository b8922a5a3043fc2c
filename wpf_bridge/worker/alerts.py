"""Alerts: when deliveries fail for good, one message per burst, not one per delivery.

A burst ends when no delivery has failed for ``QUIET`` seconds (or has lasted ``LONGEST``). The
store's ``alerted`` mark says up to when failures were reported; a worker moves it before it
posts, so that with several workers one sends each message, and moves it back if the post fails.
"""

from __future__ import annotations

import collections
import logging
import re
import time

from ..clients.alerts import AlertClient
from ..errors import BridgeError
from ..history import when
from ..redact import redact
from ..store import Store
from ..types import Delivery

QUIET = 10.0  # seconds without a new failure that end a burst
LONGEST = 120.0  # a burst that goes on is reported at least this often
REASONS = 5  # distinct reasons named in one message
MARK = "alerted"
log = logging.getLogger(__name__)
EMAIL = re.compile(r"(\"[^\"]*\"|[^\s@\"<>()]+)@([^\s@<>()]+)")


class Alerts:
    def __init__(self, store: Store, client: AlertClient, secrets: list[str]):
        self.store = store
        self.client = client
        self.secrets = secrets

    def check(self, now: float | None = None) -> int:
        """Report the failures of a burst that has ended; return how many were reported."""
        now = time.time() if now is None else now
        mark = self.store.marks.get(MARK)
        if mark is None:  # the first start with alerts on: failures from before are not news
            self.store.marks.move(MARK, None, now)
            return 0
        failures = self.store.deliveries.failures_since(mark, now)
        if not failures:
            return 0
        first, last = failures[0].updated_at, failures[-1].updated_at
        if now - last < QUIET and now - first < LONGEST:
            return 0  # the burst goes on
        if not self.store.marks.move(MARK, mark, last):
            return 0  # another worker reports it
        try:
            self.client.post(redact(message(failures), self.secrets))
        except BridgeError as exc:
            log.error("alert not sent: %s; trying again at the next round", exc)
            self.store.marks.move(MARK, last, mark)
            return 0
        log.info("alert sent: %d deliveries failed", len(failures))
        return len(failures)


def message(failures: list[Delivery]) -> str:
    """How many failed, between when, and the commonest reasons. Reasons quote what people typed
    into Ortto forms: emails are masked (a chat channel is no place for customers' addresses) and
    Slack's control characters escaped (no ``<!channel>`` ping, no disguised link)."""
    reasons = collections.Counter(_slack_safe((d.result or "no reason recorded")[:200]) for d in failures)
    count = len(failures)
    lines = [
        f"wpf-bridge: {count} deliver{'y' if count == 1 else 'ies'} failed for good between "
        f"{when(failures[0].updated_at)} and {when(failures[-1].updated_at)}."
    ]
    lines += [f"• {n}× {reason}" for reason, n in reasons.most_common(REASONS)]  # noqa: RUF001 (the multiplication sign: "3 times")
    if len(reasons) > REASONS:
        lines.append(f"• and {len(reasons) - REASONS} other reason(s)")
    lines.append("Open the console's Deliveries page (status: failed) to see each one, and replay them once fixed.")
    return "\n".join(lines)


def _slack_safe(text: str) -> str:
    masked = EMAIL.sub(lambda m: f"{m.group(1).strip(chr(34))[:1]}…@{m.group(2)}", text)
    return masked.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
