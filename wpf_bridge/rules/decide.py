"""Each action's decision: from the contact, what the look-up found, the site's roles and the
policy, to the write to make or the outcome."""

from __future__ import annotations

from ..accounts import Contact, Lookup
from ..roles import SiteRoles
from ..types import FAILED, Delivery
from .changes import retag, update
from .creation import new_user, wants_email
from .decisions import NO_USER, Decision, Finish, Outcome, Update, Write
from .guards import refusal
from .people import Match, ours, same_person
from .policy import Policy


def decide_add(delivery: Delivery, contact: Contact, found: Lookup, site: SiteRoles, policy: Policy) -> Decision:
    """``add``: create the contact's user, or update the one it has as ``update`` does (its
    password and login stay, no email is sent, no password goes to Ortto)."""
    match = same_person(found)
    if match is None:
        return new_user(contact, delivery, site, policy)
    return _existing(match, contact, delivery, site, policy)


def decide_taken(
    delivery: Delivery, contact: Contact, found: Lookup, site: SiteRoles, policy: Policy
) -> Outcome | Update | Finish:
    """WordPress refused the create because the email is taken: someone created the user since the
    look-up (update it), or this very create was applied before, in a batch WordPress then refused
    as a whole (finish it, with the password it was created with)."""
    match = same_person(found)
    if match is None:
        return Outcome(FAILED, f"WordPress reports {contact.email} as taken, but no user has exactly that email")
    return _existing(match, contact, delivery, site, policy)


def decide_update(
    delivery: Delivery, contact: Contact, found: Lookup, site: SiteRoles, policy: Policy
) -> Outcome | Update:
    """``update``: no user for the contact is not an error (WP Fusion: "no matching user"): nothing is created."""
    match = same_person(found)
    if match is None:
        return NO_USER
    return refusal(match, contact, policy.grantable) or update(match, contact, delivery.role, site, policy)


def decide_update_tags(contact: Contact, found: Lookup, site: SiteRoles, policy: Policy) -> Outcome | Update:
    """``update_tags``: the user's tags and the roles linked to them, nothing else, under the same guards."""
    match = same_person(found)
    if match is None:
        return NO_USER
    return refusal(match, contact, policy.grantable) or retag(match, contact, site, policy)


def _existing(
    match: Match, contact: Contact, delivery: Delivery, site: SiteRoles, policy: Policy
) -> Outcome | Update | Finish:
    """The contact has a user: one this delivery created (finish it), or anyone else (update it,
    unless a guard refuses)."""
    user = match.user
    if ours(match, delivery.id):
        owed = wants_email(delivery, policy) and not user.notified  # killed between commit and email
        return Finish(user, Write(user.id, {"wpf_send_notification": True}) if owed else None)
    return refusal(match, contact, policy.grantable) or update(match, contact, delivery.role, site, policy)
