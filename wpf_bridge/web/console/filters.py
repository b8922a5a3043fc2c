"""The deliveries page's filters, read from a query string or a form (the replay form repeats them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlencode

from ...store import Search
from ...types import DELIVERY_ACTIONS, DIRECTIONS, STATUSES

PAGE_SIZE = 50
FIELDS = ("status", "direction", "action", "q", "since", "until")


@dataclass(frozen=True)
class Filters:
    values: dict[str, str]  # what the form showed, to fill it again
    search: Search
    page: int
    errors: tuple[str, ...] = ()

    @property
    def replayable(self) -> Search:
        """The same deliveries, only those a replay would run again (failed or retrying)."""
        return replace(self.search, replayable=True)

    def query(self, **changes: object) -> str:
        """This filter as a query string (for links to other pages of it)."""
        values = {**{k: v for k, v in self.values.items() if v}, **{k: v for k, v in changes.items() if v}}
        return urlencode(values)

    def describe(self) -> str:
        shown = [f"{name}={value!r}" for name, value in self.values.items() if value]
        return ", ".join(shown) if shown else "no filter (all deliveries)"


def read_filters(args: Mapping[str, str]) -> Filters:
    """Unknown values are dropped with a note, never an error page: the list still shows."""
    values = {name: (args.get(name) or "").strip()[:200] for name in FIELDS}
    errors = []
    if values["status"] not in ("", *STATUSES):
        errors.append(f"unknown status {values['status']!r}")
        values["status"] = ""
    if values["direction"] not in ("", *DIRECTIONS):
        errors.append(f"unknown direction {values['direction']!r}")
        values["direction"] = ""
    if values["action"] not in ("", *DELIVERY_ACTIONS):
        errors.append(f"unknown action {values['action']!r}")
        values["action"] = ""
    times = {}
    for name in ("since", "until"):
        if values[name]:
            try:
                moment = datetime.fromisoformat(values[name])
                times[name] = (moment if moment.tzinfo else moment.astimezone()).timestamp()
            except ValueError:
                errors.append(f"{name}: {values[name]!r} is not a date and time")
                values[name] = ""
    page = args.get("page", "0")
    search = Search(
        status=values["status"] or None,
        action=values["action"] or None,
        direction=values["direction"] or None,
        text=values["q"] or None,
        since=times.get("since"),
        until=times.get("until"),
    )
    return Filters(values, search, int(page) if page.isdigit() and int(page) < 100000 else 0, tuple(errors))
