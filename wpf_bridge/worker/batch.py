"""Sends the WordPress requests of a group of deliveries together: a few requests for the group
instead of two per user, each of which pays WordPress's whole start-up.

Every delivery of a group runs its action on a thread of its own, exactly as it would alone, with
a ``WordPressBatch`` in place of the WordPress client. A call waits until every delivery of the
group still running has made a call too, or ended; then all the waiting calls go at once: the
look-ups in one request, the user writes in another. The companion plugin runs each write as its
own request to core's users route, so each user is checked, written in its own transaction and
emailed as if alone; the rules stay in the actions. A group of one sends each call as it comes,
as a request of its own: a lone webhook waits for nobody.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..clients.http import calls_apart, note_calls
from ..clients.wordpress import MAX_LOOKUPS, MAX_WRITES, BatchRefused, Lookup, PluginOutdated, User, WordPressClient

log = logging.getLogger(__name__)


class Batching:
    """Whether the site's companion plugin takes batches; shared by a worker's threads. An older
    plugin is told once in the log, and the calls go one by one until the worker restarts."""

    def __init__(self) -> None:
        self.supported = True

    def unsupported(self, exc: PluginOutdated) -> None:
        if self.supported:
            self.supported = False
            log.warning("%s; until then every look-up and write is a request of its own", exc)


@dataclass
class _Call:
    kind: str  # "lookup" or "write"
    args: tuple
    rank: int  # its delivery's place in the group (arrival order), the order the calls are sent in
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    calls: list[str] = field(default_factory=list)  # the requests that carried it, for its delivery's history


class WordPressBatch:
    """The WordPress client as the actions of one group of ``members`` deliveries see it."""

    def __init__(self, client: WordPressClient, members: int, batching: Batching):
        self.client = client
        self.batching = batching
        self._active = members
        self._waiting: list[_Call] = []
        self._changed = threading.Condition()
        self._member = threading.local()

    def join(self, rank: int) -> None:
        """The calling thread runs the group's ``rank``-th delivery (its calls are sent in that order)."""
        self._member.rank = rank

    def lookup(self, contact_id: str | None, email: str | None) -> Lookup:
        return self._wait("lookup", (contact_id, email))

    def create_user(self, values: dict[str, Any]) -> User:
        return self._wait("write", (None, values))

    def update_user(self, user_id: int, values: dict[str, Any]) -> User:
        return self._wait("write", (user_id, values))

    def leave(self) -> None:
        """A member's delivery has ended: the others no longer wait for its calls."""
        with self._changed:
            self._active -= 1
            ready = self._take_if_all_waiting()
        self._send(ready)

    def _wait(self, kind: str, args: tuple) -> Any:
        call = _Call(kind, args, getattr(self._member, "rank", 0))
        with self._changed:
            self._waiting.append(call)
            ready = self._take_if_all_waiting()
        self._send(ready)
        with self._changed:
            while not call.done:
                self._changed.wait()
        note_calls(call.calls)
        if call.error is not None:
            raise call.error
        return call.result

    def _take_if_all_waiting(self) -> list[_Call]:
        if self._waiting and len(self._waiting) >= self._active:
            ready, self._waiting = self._waiting, []
            return ready
        return []

    def _send(self, ready: list[_Call]) -> None:
        """Send the calls every member waits for (on the thread of the member that came last)."""
        if not ready:
            return
        ready.sort(key=lambda call: call.rank)
        try:
            lookups = [call for call in ready if call.kind == "lookup"]
            writes = [call for call in ready if call.kind == "write"]
            self._in_chunks(lookups, MAX_LOOKUPS, lambda c: self.client.lookup(*c.args), self._lookup_many)
            self._in_chunks(writes, MAX_WRITES, self._write_one, self._write_many)
        finally:  # whatever happened, nobody waits for ever
            with self._changed:
                for call in ready:
                    call.done = True
                self._changed.notify_all()

    def _in_chunks(
        self, calls: list[_Call], size: int, one: Callable[[_Call], Any], many: Callable[[list[_Call]], None]
    ) -> None:
        """Send ``calls`` in requests of ``size`` (``many``), or each alone (``one``): when there is
        only one, when the plugin takes no batches, and when WordPress refused a batch as a whole
        (so that only the call that causes it fails; a retry of a write the batch had applied
        finds it done, see ``actions.add``)."""
        alone = calls if len(calls) == 1 or not self.batching.supported else []
        for start in range(0, len(calls) if not alone else 0, size):
            chunk = calls[start : start + size]
            with calls_apart() as sent:
                try:
                    many(chunk)
                except PluginOutdated as exc:
                    self.batching.unsupported(exc)
                    alone = calls[start:]
                    break
                except BatchRefused as exc:
                    log.warning("WordPress refused a batch of %d as a whole (%s); sending each alone", len(chunk), exc)
                    alone.extend(chunk)
                except Exception as exc:  # no answer: so did each call it carried
                    for call in chunk:
                        call.error = exc
            for call in chunk:
                call.calls = [f"{line} ({len(chunk)} together)" for line in sent]
        for call in alone:
            with calls_apart() as sent:
                try:
                    call.result = one(call)
                except Exception as exc:
                    call.error = exc
            call.calls = [*call.calls, *sent]

    def _lookup_many(self, chunk: list[_Call]) -> None:
        for call, found in zip(chunk, self.client.lookup_many([call.args for call in chunk]), strict=True):
            call.result = found

    def _write_one(self, call: _Call) -> User:
        user_id, values = call.args
        return self.client.update_user(user_id, values) if user_id else self.client.create_user(values)

    def _write_many(self, chunk: list[_Call]) -> None:
        for call, written in zip(chunk, self.client.write_many([call.args for call in chunk]), strict=True):
            if isinstance(written, Exception):
                call.error = written
            else:
                call.result = written
