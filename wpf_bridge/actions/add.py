"""``add`` (alias ``add_user``): find the contact's WordPress user, or create it.

An existing user is updated like ``update`` and nothing more: its password and login stay, no
email is sent, no password goes to Ortto. A new user gets a username by the configured format,
a password (mapped, or generated and kept sealed until Ortto has it), an allowed role, its
fields, meta and tags, and the welcome email when asked, all in one WordPress call.
"""

from __future__ import annotations

from ..accounts import Contact
from ..clients.wordpress import WordPressError
from ..rules import Create, Finish, Write, decide_add, decide_taken
from ..rules.creation import created_with_mapped_password, no_free_username
from ..types import Delivery
from .passwords import generate_password
from .steps import Context, Look, Steps, finished, perform


def add(delivery: Delivery, contact: Contact, ctx: Context) -> Steps:
    found = yield Look(contact.id, contact.email)
    decision = decide_add(delivery, contact, found, ctx.roles(), ctx.policy)
    if isinstance(decision, Create):
        return (yield from _create(delivery, contact, decision, ctx))
    return (yield from perform(decision, ctx))


def _create(delivery: Delivery, contact: Contact, create: Create, ctx: Context) -> Steps:
    """Try the usernames in order until WordPress takes one, with the password kept before the
    first try, so that a retry after a crash creates nobody twice and sends the same password."""
    password = create.password or ctx.journal.pending_password()
    if password is None:
        password = generate_password()
        ctx.journal.keep_password(password, contact.id)
    for username in create.usernames:
        try:
            user = yield Write(None, {**create.values, "password": password, "username": username})
        except WordPressError as exc:
            if exc.code == "existing_user_login":
                continue
            if exc.code == "existing_user_email":
                return (yield from _taken(delivery, contact, ctx))
            raise
        if create.password:
            return created_with_mapped_password(user, username, create.note)
        return finished(user, create.note, ctx)
    return no_free_username(contact, create)


def _taken(delivery: Delivery, contact: Contact, ctx: Context) -> Steps:
    """The email is taken: look again. The generated password is forgotten unless the user found
    is this delivery's own (then it is the user's password, and still goes to Ortto)."""
    found = yield Look(contact.id, contact.email)
    decision = decide_taken(delivery, contact, found, ctx.roles(), ctx.policy)
    if not isinstance(decision, Finish):
        ctx.journal.forget_password()
    return (yield from perform(decision, ctx))
