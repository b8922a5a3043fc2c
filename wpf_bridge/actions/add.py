"""``add`` (alias ``add_user``): find the contact's WordPress user, or create it.

An existing user is updated like ``update`` and nothing more: its password and login stay, no
email is sent, no password goes to Ortto. A new user gets a username by the configured format,
a password (mapped, or generated and kept sealed until Ortto has it), an allowed role, its
fields, meta and tags, and the welcome email when asked, all in one WordPress call.
"""

from __future__ import annotations

from typing import Any

from ..clients.ortto import Contact
from ..clients.wordpress import User, WordPressError
from ..errors import PermanentError
from ..types import DONE, PUSHING, Delivery
from .common import (
    MAX_EMAIL,
    Context,
    Match,
    Outcome,
    find_user,
    load_contact,
    new_user_role,
    refusal,
    tags_meta,
    update_user,
)
from .passwords import generate_password, username_candidates


def add(delivery: Delivery, ctx: Context) -> Outcome:
    contact = load_contact(ctx, delivery)
    match = find_user(ctx, contact)
    if match is None:
        return _create(ctx, contact, delivery)
    return _existing(ctx, match, contact, delivery)


def _existing(ctx: Context, match: Match, contact: Contact, delivery: Delivery) -> Outcome:
    """The contact has a user: one this delivery created before a crash or a failure (finish it),
    or anyone else (update it, unless a rule refuses)."""
    user = match.user
    if _ours(match, delivery):
        if _wants_email(ctx, delivery) and not user.notified:  # killed between commit and email
            ctx.wordpress.update_user(user.id, {"wpf_send_notification": True})
        return _finish_created(ctx, user, "")
    return refusal(ctx, match, contact) or update_user(ctx, match, contact, delivery)


def _ours(match: Match, delivery: Delivery) -> bool:
    return match.by_contact_id and match.user.delivery_id == delivery.id


def _create(ctx: Context, contact: Contact, delivery: Delivery) -> Outcome:
    if not contact.email:
        raise PermanentError(f"Ortto contact {contact.id} has no email; WordPress needs one")
    if len(contact.email) > MAX_EMAIL:
        raise PermanentError(f"Ortto contact {contact.id} has an email longer than WordPress's {MAX_EMAIL} characters")
    role, note = new_user_role(ctx, delivery.role)
    settings = ctx.settings
    values: dict[str, Any] = settings.field_map.user_values(contact.fields, creating=True)
    wanted_username = values.pop("username", "")
    mapped_password = values.pop("password", None)
    password = mapped_password or ctx.journal.pending_password()
    if password is None:
        password = generate_password()
        ctx.journal.keep_password(password, contact.id)
    values.update(
        email=contact.email,
        password=password,
        roles=[role],
        wpf_meta={
            **settings.field_map.meta_values(contact.fields),
            "ortto_contact_id": contact.id,
            "ortto_tags": tags_meta(contact),
            "wpf_bridge_delivery": delivery.id,
            "wpf_bridge_created_for": contact.id,  # the one person whose email this user follows
        },
        wpf_send_notification=_wants_email(ctx, delivery),
    )
    candidates = username_candidates(
        settings.username_format,
        contact.email,
        first=str(contact.fields.get("str::first") or ""),
        last=str(contact.fields.get("str::last") or ""),
        wanted=wanted_username,
    )
    for username in candidates:
        try:
            user = ctx.wordpress.create_user({**values, "username": username})
        except WordPressError as exc:
            if exc.code == "existing_user_login":
                continue
            if exc.code == "existing_user_email":
                return _created_meanwhile(ctx, contact, delivery)
            raise
        if mapped_password:
            return Outcome(DONE, f"created user {user.id} ({username}) with the mapped password{note}", user.id)
        return _finish_created(ctx, user, note)
    raise PermanentError(f"no free username for {contact.email} after {username!r}")


def _wants_email(ctx: Context, delivery: Delivery) -> bool:
    return delivery.send_notification or ctx.settings.send_welcome_email


def _finish_created(ctx: Context, user: User, note: str) -> Outcome:
    """The user exists. A kept generated password waits, sealed, for the batched push to Ortto's
    Return Password field (``pushing``), which erases it; without that field it is forgotten."""
    created = f"created user {user.id} ({user.username}){note}"
    if not ctx.settings.ortto_password_field:
        ctx.journal.forget_password()
        return Outcome(DONE, created, user.id)
    if ctx.journal.pending_password():
        return Outcome(PUSHING, created, user.id)
    return Outcome(
        DONE,
        f"{created}; its generated password was erased when the delivery failed, so none goes "
        'to Ortto: the user can set one with WordPress\'s "Lost your password?"',
        user.id,
    )


def _created_meanwhile(ctx: Context, contact: Contact, delivery: Delivery) -> Outcome:
    """WordPress says the email is taken: someone created the user since our look-up (update it),
    or this very create was applied before, in a batch WordPress then refused as a whole (finish it,
    with the password it was created with)."""
    match = find_user(ctx, contact)
    if match is None:
        raise PermanentError(f"WordPress reports {contact.email} as taken, but no user has exactly that email")
    if not _ours(match, delivery):
        ctx.journal.forget_password()
    return _existing(ctx, match, contact, delivery)
