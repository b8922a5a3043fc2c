"""Which deliveries an operator asks for: the filters of ``wpf-bridge deliveries`` and of the console."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..types import FAILED, RETRYING, TO_ORTTO
from .rows import PUSHED


def in_list(column: str, name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """``column in (:name_0, :name_1, ...)`` and its parameters: a list bound value by value."""
    params = {f"{name}_{n}": value for n, value in enumerate(values)}
    return f"{column} in ({', '.join(':' + key for key in params)})", params


@dataclass(frozen=True)
class Search:
    """Filters that all apply (an unset one matches everything)."""

    status: str | None = None
    statuses: tuple[str, ...] = ()
    action: str | None = None
    direction: str | None = None  # "wordpress" (webhooks' deliveries) or "ortto" (WordPress's changes)
    email: str | None = None  # the whole email, any case
    contact_id: str | None = None
    text: str | None = None  # the console's search box: part of an email, or a whole contact id
    since: float | None = None  # arrived at or after
    until: float | None = None  # arrived before
    changed_since: float | None = None  # last changed at or after
    replayable: bool = False  # failed, or waiting for a retry

    def to_json(self) -> str:
        """As stored with a bulk replay, for the worker that carries it out."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Search:
        values = json.loads(text)
        return cls(**{**values, "statuses": tuple(values["statuses"])})

    def where(self) -> tuple[str, dict[str, Any]]:
        """A SQL condition on ``deliveries`` and its parameters (never values spliced into the SQL)."""
        conditions, params = ["1 = 1"], {}

        def add(condition: str, **values: Any) -> None:
            conditions.append(condition)
            params.update(values)

        if self.status:
            add("status = :status", status=self.status)
        if self.statuses:
            condition, names = in_list("status", "status", self.statuses)
            add(condition, **names)
        if self.replayable:
            add("status in (:replay_failed, :replay_retrying)", replay_failed=FAILED, replay_retrying=RETRYING)
        if self.action:
            add("action = :action", action=self.action)
        if self.direction:
            add(PUSHED if self.direction == TO_ORTTO else f"not {PUSHED}")
        if self.email:
            add("lower(email) = :email", email=self.email.lower())
        if self.contact_id:
            add("contact_id = :contact_id", contact_id=self.contact_id)
        if self.text and self.text.strip():
            text = self.text.strip()
            pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            add("(contact_id = :text or lower(email) like :pattern escape '\\')", text=text, pattern=pattern)
        if self.since is not None:
            add("created_at >= :since", since=self.since)
        if self.until is not None:
            add("created_at < :until", until=self.until)
        if self.changed_since is not None:
            add("updated_at >= :changed_since", changed_since=self.changed_since)
        return " and ".join(conditions), params
