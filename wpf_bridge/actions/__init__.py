"""One plain function per webhook action; each takes a delivery and a context, returns an outcome."""

from __future__ import annotations

from collections.abc import Callable

from ..types import Delivery
from .add import add
from .common import Context, Journal, Outcome
from .update import update
from .update_tags import update_tags

ACTIONS: dict[str, Callable[[Delivery, Context], Outcome]] = {
    "add": add,
    "update": update,
    "update_tags": update_tags,
}

__all__ = ["ACTIONS", "Context", "Journal", "Outcome"]
