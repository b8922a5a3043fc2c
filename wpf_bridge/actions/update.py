"""``update`` (alias ``update_user``): pull fields, meta, tags and role onto an existing user."""

from __future__ import annotations

from ..accounts import Contact
from ..rules import decide_update
from ..types import Delivery
from .steps import Context, Look, Steps, perform


def update(delivery: Delivery, contact: Contact, ctx: Context) -> Steps:
    found = yield Look(contact.id, contact.email)
    return (yield from perform(decide_update(delivery, contact, found, ctx.roles(), ctx.policy), ctx))
