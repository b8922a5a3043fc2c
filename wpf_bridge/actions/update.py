"""``update`` (alias ``update_user``): pull fields, meta, tags and role onto an existing user."""

from __future__ import annotations

from ..types import Delivery
from .common import NO_USER, Context, Outcome, find_user, load_contact, refusal, update_user


def update(delivery: Delivery, ctx: Context) -> Outcome:
    """No user for the contact is not an error (WP Fusion: "no matching user"): nothing is created."""
    contact = load_contact(ctx, delivery)
    match = find_user(ctx, contact)
    if match is None:
        return NO_USER
    return refusal(ctx, match, contact) or update_user(ctx, match, contact, delivery)
