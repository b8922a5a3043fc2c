"""``/ready``: can this bridge take webhooks, and is anything applying them?

``/health`` only says the web process answers. Readiness also reads the store: it fails (503)
when the store cannot be read, or when deliveries have been waiting longer than the stall limit
while nothing was applied in that time (no worker, WordPress down, Ortto refusing...).
"""

from __future__ import annotations

from typing import Any

from ..store import Store, StoreUnavailable


def readiness(store: Store, stall_seconds: float) -> tuple[dict[str, Any], int]:
    """The ``/ready`` answer and its HTTP status."""
    try:
        health = store.figures.health()
    except StoreUnavailable:
        return {"status": "unavailable", "store": "unreachable"}, 503
    now = float(health["now"] or 0)

    def ago(moment: float | None) -> float | None:
        return round(now - moment, 1) if moment else None

    oldest, applied = ago(health["oldest_waiting"]), ago(health["last_applied"])
    stalled = (
        bool(health["waiting"])
        and oldest is not None
        and oldest > stall_seconds
        and (applied is None or applied > stall_seconds)
    )
    answer = {
        "status": "stalled" if stalled else "ok",
        "store": "ok",
        "waiting": health["waiting"],
        "oldest_waiting_seconds": oldest,
        "last_applied_seconds_ago": applied,
        "worker_heartbeat_seconds_ago": ago(health["worker_beat"]),
    }
    if stalled:
        answer["problem"] = (
            f"deliveries have waited over {stall_seconds:.0f} s and none was applied in that time: "
            "is a worker running, and can it reach WordPress and Ortto? (`wpf-bridge deliveries`)"
        )
    return answer, 503 if stalled else 200
