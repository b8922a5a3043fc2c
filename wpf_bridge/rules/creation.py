"""What a new user is made of (username, password, role, fields, meta, tags, welcome email), and
how its delivery ends once it exists."""

from __future__ import annotations

from typing import Any

from ..accounts import Contact, User
from ..roles import SiteRoles
from ..types import DONE, FAILED, PUSHING, Delivery
from .changes import tags_meta
from .decisions import Create, Outcome
from .granting import default_role_refusal, new_user_role
from .linking import linked_roles
from .policy import Policy
from .usernames import username_candidates

MAX_EMAIL = 100  # the wp_users column; WordPress drops a longer one without an error


def wants_email(delivery: Delivery, policy: Policy) -> bool:
    """The welcome email goes when the webhook asks (``send_notification``) or the settings say so."""
    return delivery.send_notification or policy.welcome_email


def new_user(contact: Contact, delivery: Delivery, site: SiteRoles, policy: Policy) -> Create | Outcome:
    """The user to create for a contact nobody holds yet, in one WordPress call; or why nobody is
    created (no email, one too long for WordPress, a default role that carries power)."""
    if not contact.email:
        return Outcome(FAILED, f"Ortto contact {contact.id} has no email; WordPress needs one")
    if len(contact.email) > MAX_EMAIL:
        return Outcome(
            FAILED, f"Ortto contact {contact.id} has an email longer than WordPress's {MAX_EMAIL} characters"
        )
    refused = default_role_refusal(site, policy)
    if refused:
        return refused
    role, note = new_user_role(delivery.role, site, policy)
    roles, unlinked = linked_roles([role], contact.tags, site, policy, role)
    note += f"; {unlinked}" if unlinked else ""
    values: dict[str, Any] = dict(policy.field_map.user_values(contact.fields, creating=True))
    wanted_username = values.pop("username", "")
    mapped_password = values.pop("password", None)
    values.update(
        email=contact.email,
        roles=roles,
        wpf_meta={
            **policy.field_map.meta_values(contact.fields),
            "ortto_contact_id": contact.id,
            "ortto_tags": tags_meta(contact),
            "wpf_bridge_delivery": delivery.id,
            "wpf_bridge_created_for": contact.id,  # the one person whose email this user follows
        },
        wpf_send_notification=wants_email(delivery, policy),
    )
    usernames = username_candidates(
        policy.username_format,
        contact.email,
        first=str(contact.fields.get("str::first") or ""),
        last=str(contact.fields.get("str::last") or ""),
        wanted=wanted_username,
    )
    return Create(values, tuple(usernames), mapped_password, note)


def no_free_username(contact: Contact, create: Create) -> Outcome:
    return Outcome(FAILED, f"no free username for {contact.email} after {create.usernames[-1]!r}")


def created_with_mapped_password(user: User, username: str, note: str) -> Outcome:
    return Outcome(DONE, f"created user {user.id} ({username}) with the mapped password{note}", user.id)


def created(user: User, note: str, policy: Policy, password_kept: bool) -> Outcome:
    """The user exists. A kept generated password waits, sealed, for the batched push to Ortto's
    Return Password field (``pushing``); without that field it is forgotten (the caller erases it);
    a password erased when the delivery failed before is gone for good, and the outcome says so."""
    message = f"created user {user.id} ({user.username}){note}"
    if not policy.returns_password:
        return Outcome(DONE, message, user.id)
    if password_kept:
        return Outcome(PUSHING, message, user.id)
    return Outcome(
        DONE,
        f"{message}; its generated password was erased when the delivery failed, so none goes "
        'to Ortto: the user can set one with WordPress\'s "Lost your password?"',
        user.id,
    )
