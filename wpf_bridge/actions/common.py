"""Rules every action shares: which contact, which user, which role, what may be touched.

Ortto contact data is attacker-controlled (anyone can fill an Ortto form with anyone's email), so
a user who holds power by any means is never changed, a user found only by email is not taken from
another Ortto person, only a user the bridge created for the same Ortto person follows that
person's email, and no role that carries power is ever granted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..clients.ortto import Contact
from ..clients.wordpress import Lookup, User
from ..errors import PermanentError
from ..roles import PLUGIN_TOO_OLD, SiteRoles, held_power
from ..settings import Settings
from ..types import DONE, FAILED, SKIPPED, Delivery

MAX_EMAIL = 100  # the wp_users column; WordPress drops a longer one without an error


class Contacts(Protocol):
    """Where an action gets a delivery's Ortto person (the worker's batched loader)."""

    def load(self, delivery: Delivery) -> Contact: ...


class WordPress(Protocol):
    """What an action asks of WordPress: the client, or a group's batch that stands in for it."""

    def lookup(self, contact_id: str | None, email: str | None) -> Lookup: ...
    def create_user(self, values: dict[str, Any]) -> User: ...
    def update_user(self, user_id: int, values: dict[str, Any]) -> User: ...


class Journal(Protocol):
    """Where an action records progress that must survive a crash and a retry."""

    def learn(self, contact_id: str, email: str | None) -> None:
        """Record who the delivery is for; raises ``Deferred`` if another delivery for that person must go first."""

    def pending_password(self) -> str | None: ...
    def keep_password(self, password: str, person_id: str) -> None: ...
    def forget_password(self) -> None: ...


@dataclass(frozen=True)
class Context:
    settings: Settings
    wordpress: WordPress
    contacts: Contacts
    journal: Journal
    roles: Callable[[], SiteRoles]  # the site's roles and their capabilities (cached)


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``done`` (WordPress changed), ``skipped`` (nothing to do, no retry) or
    ``pushing`` (a new user's password still has to reach Ortto)."""

    status: str
    message: str
    user_id: int | None = None


@dataclass(frozen=True)
class Match:
    """A contact's WordPress user, and whether it holds the contact's id (else it matched by email)."""

    user: User
    by_contact_id: bool


def load_contact(ctx: Context, delivery: Delivery) -> Contact:
    """The delivery's Ortto contact; its email is recorded on the delivery, so that an operator
    finds it by email even when the webhook named only a contact id."""
    contact = ctx.contacts.load(delivery)
    ctx.journal.learn(contact.id, contact.email)
    return contact


def find_user(ctx: Context, contact: Contact) -> Match | None:
    """The WordPress user for a contact: the one holding its contact id, else the one with its email."""
    found = ctx.wordpress.lookup(contact.id, contact.email)
    if found.by_contact_id:
        return Match(found.by_contact_id, True)
    return Match(found.by_email, False) if found.by_email else None


NO_USER = Outcome(SKIPPED, "no matching user")  # not an error (WP Fusion's words): nothing is created


def refusal(ctx: Context, match: Match, contact: Contact) -> Outcome | None:
    """Why an existing-user action must stop here, else ``None``: a user who holds power
    (skipped: nothing to do; not linked, renamed or re-roled); or one found by email that belongs
    to another Ortto person (a second person sharing an email must not take over the account) or
    that set the email on itself unconfirmed (a site user must not claim someone's contact, role and
    tags by typing their email), or a plugin too old to tell: failed, for an operator to sort out
    and replay."""
    user = match.user
    power = held_power(user, ctx.settings.allowed_roles)
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


def role_refusal(ctx: Context, role: str) -> str | None:
    """Why a webhook may not grant ``role``: not in ``WPF_ALLOWED_ROLES``, or refused by the site's roles."""
    if role not in ctx.settings.allowed_roles:
        return "is not allowed (WPF_ALLOWED_ROLES)"
    why = ctx.roles().refusal(role)
    return f"is refused: {why}" if why else None


def new_user_role(ctx: Context, requested: str | None) -> tuple[str, str]:
    """The role for a new user and a note on why it is not the one requested. The default role is
    checked too: if even it carries power, nobody is created until the settings are fixed."""
    default = ctx.settings.default_role
    why_not_default = ctx.roles().refusal(default)
    if why_not_default:
        raise PermanentError(f"WPF_DEFAULT_ROLE {default!r} cannot be granted: {why_not_default}")
    if not requested or requested == default:
        return default, ""
    why = role_refusal(ctx, requested)
    return (default, f"; role {requested!r} {why}, gave {default!r}") if why else (requested, "")


def tags_meta(contact: Contact) -> list[str] | None:
    """``ortto_tags`` as WP Fusion stores it: a list of names, removed when empty."""
    return contact.tags or None


def update_user(ctx: Context, match: Match, contact: Contact, delivery: Delivery) -> Outcome:
    """Pull mapped fields, meta, tags and the allowed role onto an existing user, in one write.

    A mapped ``user_email`` is applied only to a user the bridge created for this very Ortto
    person: moving the email of a user it found by email (and linked) would hand the account, and
    its password resets, to whoever typed that email into an Ortto form."""
    user = match.user
    field_map = ctx.settings.field_map
    values: dict = field_map.user_values(contact.fields, creating=False)
    notes = []
    if (
        not (match.by_contact_id and user.created_for == contact.id)
        and values.pop("email", user.email).lower() != user.email.lower()
    ):
        notes.append(
            f"email not changed: user {user.id} was not created by the bridge for this Ortto person "
            "(only such a user follows its person's email)"
        )
    values["wpf_meta"] = {
        **field_map.meta_values(contact.fields),
        "ortto_contact_id": contact.id,
        "ortto_tags": tags_meta(contact),
    }
    if delivery.role:
        why = role_refusal(ctx, delivery.role)
        if why:
            notes.append(f"role {delivery.role!r} {why}; role unchanged")
        else:
            values["roles"] = [delivery.role]
            if delivery.role not in user.roles:
                notes.append(f"role {'/'.join(user.roles) or 'none'} -> {delivery.role}")
    ctx.wordpress.update_user(user.id, values)
    return Outcome(DONE, "; ".join([f"updated user {user.id}", *notes]), user.id)
