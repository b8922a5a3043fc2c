"""Who counts as the same person: the user holding the contact's id, else the one with its email."""

from __future__ import annotations

from dataclasses import dataclass

from ..accounts import Lookup, User


@dataclass(frozen=True)
class Match:
    """A contact's WordPress user, and whether it holds the contact's id (else it matched by email)."""

    user: User
    by_contact_id: bool


def same_person(found: Lookup) -> Match | None:
    """The contact's user: the one holding its contact id wins over the one with its email, so a
    person whose email moved in Ortto keeps their account."""
    if found.by_contact_id:
        return Match(found.by_contact_id, True)
    return Match(found.by_email, False) if found.by_email else None


def ours(match: Match, delivery_id: str) -> bool:
    """The user was created by this very delivery (before a crash or a refused batch), for its contact."""
    return match.by_contact_id and match.user.delivery_id == delivery_id
