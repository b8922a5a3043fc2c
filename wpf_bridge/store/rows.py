"""What the store's parts share: rows turned into deliveries, and the SQL fragments several use."""

from __future__ import annotations

from typing import Any

from ..types import PUSH_ACTIONS, PUSHING, QUEUED, RETRYING, RUNNING, Delivery

UNFINISHED = f"('{QUEUED}', '{RETRYING}', '{RUNNING}', '{PUSHING}')"  # literal SQL, so the partial indexes apply

# A delivery that pushes a WordPress change to Ortto (the other direction's deliveries: webhooks).
PUSHED = "action in (" + ", ".join(f"'{action}'" for action in PUSH_ACTIONS) + ")"

# A write by a worker's claim applies only while that claim holds the lease.
HELD = " and lease_owner = :owner"


def delivery_from(row: dict[str, Any]) -> Delivery:
    data = dict(row)
    data["send_notification"] = bool(data["send_notification"])
    return Delivery(**data)
