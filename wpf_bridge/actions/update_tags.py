"""``update_tags``: replace the user's ``ortto_tags`` with the contact's current tags, nothing else."""

from __future__ import annotations

from ..types import DONE, Delivery
from .common import NO_USER, Context, Outcome, find_user, load_contact, refusal, tags_meta


def update_tags(delivery: Delivery, ctx: Context) -> Outcome:
    contact = load_contact(ctx, delivery)
    match = find_user(ctx, contact)
    if match is None:
        return NO_USER
    stop = refusal(ctx, match, contact)
    if stop:
        return stop
    user = match.user
    ctx.wordpress.update_user(user.id, {"wpf_meta": {"ortto_tags": tags_meta(contact)}})
    return Outcome(DONE, f"tags of user {user.id} set to {contact.tags}", user.id)
