"""What a rule decides: how a run ends, or the user write to make first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..accounts import User
from ..types import SKIPPED


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``done`` (WordPress changed), ``skipped`` (nothing to do, no retry),
    ``failed`` (for an operator to sort out) or ``pushing`` (a new user's password still has to
    reach Ortto)."""

    status: str
    message: str
    user_id: int | None = None


NO_USER = Outcome(SKIPPED, "no matching user")  # not an error (WP Fusion's words): nothing is created


@dataclass(frozen=True)
class Write:
    """One user write, as core's users route takes it: a create (no ``user_id``) or an update."""

    user_id: int | None
    values: dict[str, Any]


@dataclass(frozen=True)
class Update:
    """Write to an existing user, then end as ``outcome``."""

    write: Write
    outcome: Outcome


@dataclass(frozen=True)
class Create:
    """Create a user with ``values`` under the first of ``usernames`` WordPress accepts.

    ``password`` is one mapped from Ortto (never sent back), or ``None``: the delivery's kept
    password, else a generated one, kept sealed before the create so that a retry after a crash
    uses the same. ``note`` says why the role is not the one asked for."""

    values: dict[str, Any]
    usernames: tuple[str, ...]
    password: str | None
    note: str


@dataclass(frozen=True)
class Finish:
    """This delivery created ``user`` before a crash or a batch WordPress refused as a whole:
    send the welcome email still owed (``write``, if any), then end as a new user does."""

    user: User
    write: Write | None


Decision = Outcome | Update | Create | Finish
