"""WordPress -> Ortto: what a change to a WordPress user pushes to its Ortto person, or why nothing.

A new user (made by anything but the bridge) is merged into Ortto by email, with the field map in
reverse, ``WPF_NEW_USER_TAGS`` and the tags linked to the roles it holds; it is linked to that person
afterwards. An exported user (``wpf-bridge export``: one who was there before) goes the same way,
without the new users' tags. A linked user's profile and roles reach its person by person id, so an email change
moves the person instead of making a second one. An email the user set themselves and never
confirmed is not pushed: it could be anyone's. Nothing here grants a role or writes WordPress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..accounts import Change
from .policy import Policy

NOT_LINKED = "is not linked to an Ortto person (`wpf-bridge export` pushes and links existing users)"


@dataclass(frozen=True)
class Push:
    """One person's merge: by ``person_id`` when the user is linked, else by ``email`` (a new
    user, whose existing Ortto person's values are kept: the email is unproven)."""

    user_id: int
    person_id: str | None
    email: str
    fields: dict[str, Any]
    tags: tuple[str, ...] = ()
    unset_tags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """What went, for the delivery's result (field ids and tags; never a value)."""
        parts = [f"fields {', '.join(sorted(self.fields))}"] if self.fields else []
        if self.tags:
            parts.append(f"tags {', '.join(self.tags)} applied")
        if self.unset_tags:
            parts.append(f"tags {', '.join(self.unset_tags)} removed")
        return "; ".join(parts + list(self.notes)) or "nothing but the person's id"


@dataclass(frozen=True)
class Quiet:
    """Nothing to push, and why (a skipped delivery's result)."""

    reason: str


def decide_push(change: Change, link: str, policy: Policy) -> Push | Quiet:
    """What ``change`` pushes. ``link``: the Ortto person the user is linked to ('' when none; the
    user's ``ortto_contact_id``, or what the store knows of an earlier push)."""
    user = change.profile
    if user is None:
        return Quiet(f"user {change.user_id} no longer exists in WordPress")
    if not user.email:
        return Quiet(f"user {user.id} has no email")
    fields = policy.field_map.pushed_values(user.fields, user.meta)
    if change.kind in ("new", "export"):
        if change.kind == "new" and not policy.push_new_users:
            return Quiet("new users are not pushed (WPF_PUSH_NEW_USERS is off)")
        if user.meta.get("wpf_bridge_created_for"):
            return Quiet(
                f"user {user.id} was created by the bridge for Ortto person {user.link or '?'}: not pushed back"
            )
        if link:
            return Quiet(f"user {user.id} is already linked to Ortto person {link}")
        if user.email_unconfirmed:  # it could be anyone's: it must not lead to their Ortto person
            return Quiet(f"user {user.id} set its email itself and has not confirmed it: not pushed, not linked")
        welcome = policy.new_user_tags if change.kind == "new" else ()  # an exported user registered long ago
        tags = tuple(dict.fromkeys([*welcome, *_role_tags(user.roles, policy)[0]]))
        return Push(user.id, None, user.email, fields, tags)
    if not link:
        return Quiet(f"user {user.id} {NOT_LINKED}")
    if change.kind == "roles":
        if not policy.field_map.tag_roles:
            return Quiet("no role is linked to a tag ([tag_roles] in the field map)")
        tags, unset = _role_tags(user.roles, policy)
        return Push(user.id, link, user.email, {}, tags, unset)
    if not policy.push_profile_changes:
        return Quiet("profile changes are not pushed (WPF_PUSH_PROFILE_CHANGES is off)")
    if user.email_unconfirmed:
        note = f"email not pushed: user {user.id} set it and has not confirmed it"
        return Push(user.id, link, "", fields, notes=(note,))
    return Push(user.id, link, user.email, {**fields, "str::email": user.email})


def _role_tags(roles: tuple[str, ...], policy: Policy) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The linked tags of the roles held, and those of the roles not held."""
    links = policy.field_map.tag_roles
    return (
        tuple(tag for tag, role in links.items() if role in roles),
        tuple(tag for tag, role in links.items() if role not in roles),
    )
