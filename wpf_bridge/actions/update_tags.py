"""``update_tags``: replace the user's ``ortto_tags`` with the contact's current tags, and let the linked roles follow."""

from __future__ import annotations

from ..accounts import Contact
from ..rules import decide_update_tags
from ..types import Delivery
from .steps import Context, Look, Steps, perform


def update_tags(delivery: Delivery, contact: Contact, ctx: Context) -> Steps:
    found = yield Look(contact.id, contact.email)
    return (yield from perform(decide_update_tags(contact, found, ctx.roles(), ctx.policy), ctx))
