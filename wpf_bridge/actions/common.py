"""Rules every action shares: which contact, which user, which role, what may be touched."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..contacts import ContactLoader
from ..ortto import Contact
from ..settings import NEVER_GRANTED, Settings
from ..store import DONE, SKIPPED, Delivery
from ..wordpress import User, WordPressClient

#: A user holding any of these runs the site; no webhook may change them.
PRIVILEGED_CAPABILITIES = frozenset({"manage_options", "edit_users", "promote_users", "create_users"})


class Journal(Protocol):
    """Where an action records progress that must survive a crash and a retry."""

    def pending_password(self) -> str | None: ...
    def keep_password(self, password: str, person_id: str) -> None: ...
    def forget_password(self) -> None: ...


@dataclass(frozen=True)
class Context:
    settings: Settings
    wordpress: WordPressClient
    contacts: ContactLoader
    journal: Journal


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``done`` (WordPress changed), ``skipped`` (nothing to do, no retry) or
    ``pushing`` (a new user's password still has to reach Ortto)."""

    status: str
    message: str
    user_id: int | None = None


def find_user(ctx: Context, contact: Contact) -> User | None:
    """The WordPress user for a contact: the one holding its contact id, else the one with its email."""
    found = ctx.wordpress.lookup(contact.id, contact.email)
    return found.by_contact_id or found.by_email


def privileged(user: User) -> bool:
    return NEVER_GRANTED in user.roles or bool(user.capabilities & PRIVILEGED_CAPABILITIES)


def refusal(user: User | None) -> Outcome | None:
    """Why an existing-user action must stop here (no user, or a privileged one), else ``None``."""
    if user is None:
        return Outcome(SKIPPED, "no matching user")
    if privileged(user):
        return Outcome(SKIPPED, f"user {user.id} is privileged (administrator or can manage users); not changed", user.id)
    return None


def allowed_role(settings: Settings, requested: str | None) -> str | None:
    """``requested`` if the settings allow it (never administrator), else ``None``."""
    if requested and requested != NEVER_GRANTED and requested in settings.allowed_roles:
        return requested
    return None


def tags_meta(contact: Contact) -> list[str] | None:
    """``ortto_tags`` as WP Fusion stores it: a list of names, removed when empty."""
    return contact.tags or None


def update_user(ctx: Context, user: User, contact: Contact, delivery: Delivery) -> Outcome:
    """Pull mapped fields, meta, tags and the allowed role onto an existing user, in one write."""
    field_map = ctx.settings.field_map
    values: dict = field_map.user_values(contact.fields, creating=False)
    values["wpf_meta"] = {
        **field_map.meta_values(contact.fields),
        "ortto_contact_id": contact.id,
        "ortto_tags": tags_meta(contact),
    }
    notes = []
    role = allowed_role(ctx.settings, delivery.role)
    if role:
        values["roles"] = [role]
    elif delivery.role:
        notes.append(f"role {delivery.role!r} is not allowed (WPF_ALLOWED_ROLES); role unchanged")
    ctx.wordpress.update_user(user.id, values)
    return Outcome(DONE, "; ".join([f"updated user {user.id}", *notes]), user.id)
