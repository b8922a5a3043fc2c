"""Sends the WordPress requests of a round of a group together: a few requests for the group
instead of two per user, each of which pays WordPress's whole start-up.

The look-ups go in one request (``/users/lookup``, up to ``MAX_LOOKUPS``), the user writes in
another (``/users/batch``, up to ``MAX_WRITES``). The companion plugin runs each write as its own
request to core's users route, so each user is checked, written in its own transaction and emailed
as if alone; the rules stay in the bridge. A round of one sends its request alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from ..accounts import Lookup, User
from ..actions import Look, Request
from ..clients.http import calls_apart
from ..clients.wordpress import MAX_LOOKUPS, MAX_WRITES, BatchRefused, PluginOutdated, WordPressClient
from ..rules import Write

log = logging.getLogger(__name__)

#: User writes a worker process has in flight at once (each batch is one PHP worker of the site).
#: Two drained 3,000 users 55% slower than four (37.9 s against 24.4 s, paired runs), when
#: concurrent creates still deadlocked in MariaDB; companion plugin 1.5.0 keeps the rows they
#: fought over (the new user's role, the user count) out of each create's transaction.
WRITERS = 4


class Batching:
    """Whether the site's companion plugin takes batches, and the writes in flight; shared by a
    worker's threads. An older plugin is told once in the log, and the calls go one by one until
    the worker restarts."""

    def __init__(self) -> None:
        self.supported = True
        self.writing = threading.BoundedSemaphore(WRITERS)

    def unsupported(self, exc: PluginOutdated) -> None:
        if self.supported:
            self.supported = False
            log.warning("%s; until then every look-up and write is a request of its own", exc)


@dataclass
class Call:
    """One member's request in a round, and what came back: its answer or its error, and the
    requests that carried it (for its delivery's history)."""

    request: Request
    result: Any = None
    error: Exception | None = None
    lines: list[str] = field(default_factory=list)


def send_together(client: WordPressClient, batching: Batching, calls: list[Call]) -> None:
    """Answer every call of a round (in the members' order): the look-ups together, then the writes."""
    lookups = [call for call in calls if isinstance(call.request, Look)]
    writes = [call for call in calls if not isinstance(call.request, Look)]
    one = partial(_one, client)
    _in_chunks(batching, lookups, MAX_LOOKUPS, one, partial(_lookup_many, client))
    if writes:
        with batching.writing:
            _in_chunks(batching, writes, MAX_WRITES, one, partial(_write_many, client))


def _in_chunks(
    batching: Batching, calls: list[Call], size: int, one: Callable[[Call], Any], many: Callable[[list[Call]], None]
) -> None:
    """Send ``calls`` in requests of ``size`` (``many``), or each alone (``one``): when there is
    only one, and when the plugin takes no batches. A batch WordPress refused as a whole (PHP died
    at one write: the writes before it are saved, that one and the rest are not) goes again in two
    halves, and so on down to one: a write that kills PHP every time fails alone, in a few
    requests, while a write that died of a passing deadlock costs one more batch, not a request
    per write. A write sent again after it was saved finds its user made (see ``actions.add``)."""
    chunks = [calls[start : start + size] for start in range(0, len(calls), size)]
    while chunks:
        chunk = chunks.pop(0)
        if len(chunk) == 1 or not batching.supported:
            for call in chunk:
                _alone(call, one)
            continue
        with calls_apart() as sent:
            try:
                many(chunk)
            except PluginOutdated as exc:
                batching.unsupported(exc)
                chunks.insert(0, chunk)
            except BatchRefused as exc:
                log.warning(
                    "WordPress refused a batch of %d as a whole (%s); sending it again in halves", len(chunk), exc
                )
                chunks[:0] = [chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]]
            except Exception as exc:  # no answer: so did each call it carried
                for call in chunk:
                    call.error = exc
        for call in chunk:
            call.lines.extend(f"{line} ({len(chunk)} together)" for line in sent)


def _alone(call: Call, one: Callable[[Call], Any]) -> None:
    with calls_apart() as sent:
        try:
            call.result = one(call)
        except Exception as exc:
            call.error = exc
    call.lines.extend(sent)


def _one(client: WordPressClient, call: Call) -> Lookup | User:
    request = call.request
    if isinstance(request, Look):
        return client.lookup(request.contact_id, request.email)
    return (
        client.update_user(request.user_id, request.values) if request.user_id else client.create_user(request.values)
    )


def _lookup_many(client: WordPressClient, chunk: list[Call]) -> None:
    looks = [cast(Look, call.request) for call in chunk]  # a chunk of look-ups only
    for call, found in zip(chunk, client.lookup_many([(look.contact_id, look.email) for look in looks]), strict=True):
        call.result = found


def _write_many(client: WordPressClient, chunk: list[Call]) -> None:
    writes = [cast(Write, call.request) for call in chunk]  # a chunk of writes only
    for call, written in zip(chunk, client.write_many([(w.user_id, w.values) for w in writes]), strict=True):
        if isinstance(written, Exception):
            call.error = written
        else:
            call.result = written
