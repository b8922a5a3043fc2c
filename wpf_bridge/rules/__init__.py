"""The rules that protect users, as plain decisions: what WordPress holds, the Ortto contact, the
site's roles and the settings in; the writes to make, or the outcome, out.

They read and write nothing, so every rule is tested in milliseconds (``tests/unit``); the actions
gather the data, ask a rule and make the writes it decides.
"""

from __future__ import annotations

from .decide import decide_add, decide_taken, decide_update, decide_update_tags
from .decisions import NO_USER, Create, Decision, Finish, Outcome, Update, Write
from .policy import Policy

__all__ = [
    "NO_USER",
    "Create",
    "Decision",
    "Finish",
    "Outcome",
    "Policy",
    "Update",
    "Write",
    "decide_add",
    "decide_taken",
    "decide_update",
    "decide_update_tags",
]
