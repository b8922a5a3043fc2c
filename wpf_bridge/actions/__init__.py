"""One generator per webhook action: given a delivery, its Ortto contact and a context, it yields
the WordPress requests it needs and returns the outcome (see ``steps``)."""

from __future__ import annotations

from collections.abc import Callable

from ..accounts import Contact
from ..types import Delivery
from .add import add
from .steps import Context, Journal, Look, Request, Steps
from .update import update
from .update_tags import update_tags

ACTIONS: dict[str, Callable[[Delivery, Contact, Context], Steps]] = {
    "add": add,
    "update": update,
    "update_tags": update_tags,
}

__all__ = ["ACTIONS", "Context", "Journal", "Look", "Request", "Steps"]
