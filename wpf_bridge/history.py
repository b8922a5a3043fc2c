"""Deliveries and their history as an operator reads them: one line each, one delivery whole, or JSON."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from .types import PUSHING, QUEUED, RETRYING, Attempt, Delivery

_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> float:
    """``--since``: an age (``30m``, ``2h``, ``7d``) or a date/time (``2026-11-28``, ``2026-11-28T13:00``)."""
    age = _AGE.match(text)
    if age:
        return (datetime.now(UTC) - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})).timestamp()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: give an age like 30m, 2h, 7d or a date like 2026-11-28") from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "-"


def ago(timestamp: float | None, now: float | None = None) -> str:
    """``3 min ago``, for an operator's eye."""
    if not timestamp:
        return "never"
    seconds = max(0, int((now or time.time()) - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


_RETRY_IN = re.compile(r";? (next )?retry in \d+ (s|min)")


def settled(result: str | None) -> str:
    """A run's outcome without the countdown it was written with ("retry in 7 s"): what shows it
    shows the live one, from the delivery's next run."""
    return _RETRY_IN.sub("", result or "")


def until(timestamp: float) -> str:
    """``in 63 s``, ``in 2 min``."""
    seconds = max(0, int(timestamp - time.time()))
    return f"in {seconds // 60} min" if seconds >= 120 else f"in {seconds} s"


def outcome(delivery: Delivery) -> str:
    """What the last run left, and for a delivery waiting to retry, when the next try is due."""
    waiting = delivery.status == RETRYING and delivery.run_after
    return settled(delivery.result) + (f"; next try {until(delivery.run_after)}" if waiting else "")


HEADER = f"{'arrived':19}  {'delivery':32}  {'action':12} {'status':8} {'tries':5} {'contact':24} {'email':30} outcome"


def line(delivery: Delivery) -> str:
    """One delivery on one line, in ``HEADER``'s columns."""
    return (
        f"{when(delivery.created_at):19}  {delivery.id}  {delivery.action:12} {delivery.status:8} "
        f"{delivery.attempts:<5} {delivery.contact_id or '-':24} {delivery.email or '-':30} {outcome(delivery)}"
    ).rstrip()


def whole(delivery: Delivery, attempts: list[Attempt]) -> list[str]:
    """One delivery with every field an operator needs and its history, oldest step first, as
    lines (a value from outside holding a newline stays within its line)."""
    replayed = any(attempt.call == "replay" for attempt in attempts)  # a replay counts the attempts afresh
    rows = [
        ("delivery", delivery.id),
        ("action", delivery.action),
        ("status", delivery.status),
        ("contact id", delivery.contact_id or "-"),
        ("email", delivery.email or "-"),
        ("role asked", delivery.role or "-"),
        ("welcome email", "asked" if delivery.send_notification else "not asked"),
        ("arrived", when(delivery.created_at)),
        ("last change", when(delivery.updated_at)),
        ("attempts", f"{delivery.attempts} since {'the last replay' if replayed else 'it arrived'}"),
        ("WordPress user", str(delivery.user_id or "-")),
        ("outcome", settled(delivery.result) or "-"),
    ]
    if delivery.status in (QUEUED, RETRYING, PUSHING):
        rows.append(("next run", f"{when(delivery.run_after)} ({until(delivery.run_after)})"))
    steps = [line for attempt in attempts for line in _step(attempt)]
    return [f"{name:15} {value}" for name, value in rows] + ["history"] + (steps or ["  (nothing recorded yet)"])


def _step(attempt: Attempt) -> list[str]:
    """One step of a delivery's history, then the requests it made, one a line."""
    head = (
        f"  {when(attempt.at)}  {attempt.call or '-':13} {attempt.status:8} {attempt.message}"
        + (f" [{attempt.code}]" if attempt.code else "")
        + (f" (next try {when(attempt.next_retry)})" if attempt.next_retry else "")
    )
    return [head] + [f"      {request}" for request in (attempt.calls or "").split("\n") if request]


def as_json(delivery: Delivery, attempts: list[Attempt] | None = None) -> dict[str, Any]:
    """A delivery (and its history) for ``--json``; the sealed password and the lease are left out."""
    data = {
        key: value
        for key, value in dataclasses.asdict(delivery).items()
        if key not in ("secret", "lease_until", "lease_owner", "dedupe_key", "push_to")
    }
    if attempts is not None:
        data["history"] = [dataclasses.asdict(attempt) for attempt in attempts]
    return data
