"""Who a webhook may not touch: the privileged, another person's account, an unconfirmed email.

Ortto contact data is attacker-controlled (anyone can fill an Ortto form with anyone's email), so
a user who holds power by any means is never changed, and a user found only by email is not taken
from another Ortto person, nor linked when it set that email on itself without confirming it.
"""

from __future__ import annotations

from ..accounts import Contact
from ..roles import PLUGIN_TOO_OLD, held_power
from ..types import FAILED, SKIPPED
from .decisions import Outcome
from .people import Match


def refusal(match: Match, contact: Contact, grantable: frozenset[str]) -> Outcome | None:
    """Why an existing-user action must stop here, else ``None``: a user who holds power
    (skipped: nothing to do; not linked, renamed or re-roled); or one found by email that belongs
    to another Ortto person (a second person sharing an email must not take over the account) or
    that set the email on itself unconfirmed (a site user must not claim someone's contact, role and
    tags by typing their email), or a plugin too old to tell: failed, for an operator to sort out
    and replay."""
    user = match.user
    power = held_power(user, grantable)
    if power == PLUGIN_TOO_OLD:
        return Outcome(FAILED, f"user {user.id} not changed: {power}", user.id)
    if power:
        return Outcome(SKIPPED, f"user {user.id} is privileged ({power}); not changed", user.id)
    if not match.by_contact_id and user.email_unconfirmed:
        return Outcome(
            FAILED,
            f"user {user.id} gave itself this email without confirming it (WordPress REST allows that); "
            "not linked or changed",
            user.id,
        )
    if not match.by_contact_id and user.contact_id and user.contact_id != contact.id:
        return Outcome(
            FAILED,
            f"user {user.id} has this email but is linked to Ortto contact {user.contact_id}, not {contact.id}; "
            "not relinked or changed",
            user.id,
        )
    return None
