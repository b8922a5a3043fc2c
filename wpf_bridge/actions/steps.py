"""What an action is made of: steps that ask WordPress (a look-up, a user write) and end in an outcome.

An action is a generator: it yields each request it needs and is sent the answer (or has the
error thrown in), so the worker decides how requests travel (one delivery's alone, a group's
together) and the action holds no client. Between requests it asks a rule (``wpf_bridge.rules``)
what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from ..accounts import User
from ..roles import SiteRoles
from ..rules import Finish, Outcome, Policy, Update, Write
from ..rules.creation import created


@dataclass(frozen=True)
class Look:
    """Ask WordPress for the users holding this contact id, and this email (answered with a ``Lookup``)."""

    contact_id: str | None
    email: str | None


Request = Look | Write  # a write is answered with the ``User`` written
Steps = Generator[Request, Any, Outcome]


class Journal(Protocol):
    """Where an action records progress that must survive a crash and a retry."""

    def pending_password(self) -> str | None: ...
    def keep_password(self, password: str, person_id: str) -> None: ...
    def forget_password(self) -> None: ...


@dataclass(frozen=True)
class Context:
    policy: Policy
    journal: Journal
    roles: Callable[[], SiteRoles]  # the site's roles and their capabilities (cached)


def perform(decision: Outcome | Update | Finish, ctx: Context) -> Steps:
    """Make the write a rule decided, if any, and end as it decided."""
    if isinstance(decision, Update):
        yield decision.write
        return decision.outcome
    if isinstance(decision, Finish):
        if decision.write:
            yield decision.write
        return finished(decision.user, "", ctx)
    return decision


def finished(user: User, note: str, ctx: Context) -> Outcome:
    """A new user exists: its kept password waits for Ortto, or is forgotten when none goes there."""
    kept = ctx.journal.pending_password() is not None
    if not ctx.policy.returns_password:
        ctx.journal.forget_password()
    return created(user, note, ctx.policy, kept)
