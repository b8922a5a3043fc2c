"""What an update changes on an existing user: mapped fields and meta, tags, an allowed role and
the linked roles, and the email only of a user the bridge created for this very Ortto person."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..accounts import Contact
from ..roles import SiteRoles
from ..types import DONE
from .decisions import Outcome, Update, Write
from .granting import role_refusal
from .linking import linked_roles
from .people import Match
from .policy import Policy


def tags_meta(contact: Contact) -> list[str] | None:
    """``ortto_tags`` as WP Fusion stores it: a list of names, removed when empty."""
    return contact.tags or None


def update(match: Match, contact: Contact, role: str | None, site: SiteRoles, policy: Policy) -> Update:
    """Pull mapped fields, meta, tags, the allowed ``role`` and the linked roles onto an existing
    user, in one write.

    A mapped ``user_email`` is applied only to a user the bridge created for this very Ortto
    person: moving the email of a user it found by email (and linked) would hand the account, and
    its password resets, to whoever typed that email into an Ortto form."""
    user = match.user
    values: dict[str, Any] = dict(policy.field_map.user_values(contact.fields, creating=False))
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
        **policy.field_map.meta_values(contact.fields),
        "ortto_contact_id": contact.id,
        "ortto_tags": tags_meta(contact),
    }
    why = role_refusal(role, site, policy) if role else None
    granted = None if why else role
    if why:
        notes.append(f"role {role!r} {why}; role unchanged")
    roles, refused = linked_roles([granted] if granted else user.roles, contact.tags, site, policy, granted)
    notes += _role_notes(user.roles, roles, refused)
    if granted or set(roles) != set(user.roles):
        values["roles"] = roles
    return Update(Write(user.id, values), Outcome(DONE, "; ".join([f"updated user {user.id}", *notes]), user.id))


def retag(match: Match, contact: Contact, site: SiteRoles, policy: Policy) -> Update:
    """``update_tags``: the contact's current tags replace the user's ``ortto_tags``, and the
    linked roles follow them; nothing else."""
    user = match.user
    values: dict[str, Any] = {"wpf_meta": {"ortto_tags": tags_meta(contact)}}
    roles, refused = linked_roles(user.roles, contact.tags, site, policy)
    if set(roles) != set(user.roles):
        values["roles"] = roles
    notes = _role_notes(user.roles, roles, refused)
    return Update(
        Write(user.id, values),
        Outcome(DONE, "; ".join([f"tags of user {user.id} set to {contact.tags}", *notes]), user.id),
    )


def _role_notes(before: Sequence[str], after: Sequence[str], refused: str) -> list[str]:
    notes = [f"role {'/'.join(before) or 'none'} -> {'/'.join(after)}"] if set(after) != set(before) else []
    return [*notes, refused] if refused else notes
