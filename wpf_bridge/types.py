"""What flows through the bridge: deliveries, their steps and statuses, the actions a webhook names.

Every layer may import this module; it imports nothing of ours, so the store, the rules, the worker
and the web process share these types without importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUED, RUNNING, RETRYING, DONE, SKIPPED, FAILED = "queued", "running", "retrying", "done", "skipped", "failed"
PUSHING = "pushing"  # the user exists; its generated password waits (sealed) for a batched push to Ortto
STATUSES = (QUEUED, RUNNING, RETRYING, PUSHING, DONE, SKIPPED, FAILED)

ROLE_NAME = r"^[a-z0-9_-]{1,64}\Z"  # a WordPress role's slug (sanitize_key), as a webhook's role= is checked
CONTACT_ID = r"^[A-Za-z0-9_-]{1,64}\Z"  # an Ortto person's id, as a webhook's contact_id is checked

#: WP Fusion action names, aliases included, and the action each one runs.
ACTION_NAMES = {
    "add": "add",
    "add_user": "add",
    "update": "update",
    "update_user": "update",
    "update_tags": "update_tags",
    "test": "test",
}
#: The kinds of change the companion plugin's outbox records, and the action that pushes each to Ortto.
OUTBOX_KINDS = {"new": "push_new", "profile": "push_profile", "roles": "push_roles", "export": "push_export"}
PUSH_ACTIONS = tuple(OUTBOX_KINDS.values())  # WordPress -> Ortto
TO_WORDPRESS, TO_ORTTO = "wordpress", "ortto"  # the two directions, named by where a delivery goes
DIRECTIONS = (TO_WORDPRESS, TO_ORTTO)


def towards(action: str) -> str:
    """Where a delivery of ``action`` goes: WordPress (a webhook's) or Ortto (a WordPress change's)."""
    return TO_ORTTO if action in PUSH_ACTIONS else TO_WORDPRESS


DELIVERY_ACTIONS = (
    *dict.fromkeys(name for name in ACTION_NAMES.values() if name != "test"),
    *PUSH_ACTIONS,
)  # the actions a delivery runs, both ways


@dataclass(frozen=True)
class Attempt:
    """One step in a delivery's history: a run of its action, a password push, a replay."""

    at: float
    call: str  # what ran: the action ("add"), "password push", "replay"
    status: str  # what it left the delivery as
    message: str
    code: str = ""  # the peer's own error code (WordPress's, Ortto's), if it refused
    next_retry: float | None = None
    duration: float | None = None  # seconds the run took
    calls: str = ""  # the WordPress and Ortto requests it made, one per line ("WordPress POST /path 201 0.120 s")


@dataclass(frozen=True)
class Run:
    """How long a run took and the requests it made, for its history."""

    duration: float
    calls: list[str]


@dataclass(frozen=True)
class End:
    """How a claimed run ended, to record: ``status`` with ``result``, or ``retrying`` in ``delay``
    seconds. ``email`` is the contact's, kept when the webhook did not carry one; ``forget_secret``
    erases the sealed password (it reached Ortto); ``contact_id`` is the person a push reached. Written only while the claim ``owner`` holds
    the lease: there is no other way to write a claimed run's end."""

    delivery_id: str
    status: str
    result: str
    user_id: int | None = None
    call: str = ""
    code: str = ""
    email: str | None = None
    run: Run | None = None
    owner: str | None = None
    delay: float | None = None
    forget_secret: bool = False
    contact_id: str | None = None  # the Ortto person a push reached


@dataclass(frozen=True)
class Delivery:
    id: str
    action: str
    contact_id: str | None
    email: str | None
    role: str | None
    send_notification: bool
    status: str = QUEUED
    attempts: int = 0
    result: str | None = None
    user_id: int | None = None
    secret: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    retry_since: float = 0.0  # arrival, or the last replay: the retry horizon counts from here
    lease_until: float | None = None  # while running: after this, a crashed worker's delivery is taken over
    lease_owner: str | None = None  # which claim holds the lease (see ``worker.leases``); a finish must hold it
    dedupe_key: str | None = None  # what identifies a redelivery of the same webhook call
    run_after: float = 0.0  # not claimed before this time (arrival, or the next retry)
    push_to: str | None = None  # the Ortto person whose Return Password field gets ``secret``
    shape: str | None = None  # how the call came: method, body type, parameter and JSON key names (no values)
