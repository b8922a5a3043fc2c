"""How a round's requests travel (``worker.batch``), against a WordPress client that answers from
a script: look-ups together, writes together, and a batch WordPress refuses as a whole sent again
in halves, so that a write that kills PHP fails alone and the others are written."""
from __future__ import annotations

import threading

from waiting import wait_for

from wpf_bridge.actions import Look
from wpf_bridge.accounts import Lookup
from wpf_bridge.clients.wordpress import BatchRefused
from wpf_bridge.rules import Write
from wpf_bridge.worker.batch import Batching, Call, send_together

from .facts import user


class Client:
    """Answers writes with a user, except that a batch holding ``poison`` dies as a whole, and so does the poison alone."""

    def __init__(self, poison: int | None = None):
        self.poison, self.sent = poison, []

    def lookup_many(self, people):
        self.sent.append(("lookups", len(people)))
        return [Lookup(None, None) for _ in people]

    def write_many(self, writes):
        self.sent.append(("writes", len(writes)))
        if any(user_id == self.poison for user_id, _ in writes):
            raise BatchRefused("PHP died", "wpf_bridge_database_error", 503)
        return [user(user_id) for user_id, _ in writes]

    def update_user(self, user_id, values):
        self.sent.append(("write", 1))
        if user_id == self.poison:
            raise BatchRefused("PHP died", "wpf_bridge_database_error", 503)
        return user(user_id)


def test_a_round_sends_its_look_ups_together_and_its_writes_together():
    client = Client()
    calls = [Call(Look(f"c{n}", None)) for n in range(3)] + [Call(Write(n, {})) for n in range(1, 5)]
    send_together(client, Batching(), calls)
    assert client.sent == [("lookups", 3), ("writes", 4)]
    assert [call.result.id for call in calls[3:]] == [1, 2, 3, 4] and not any(call.error for call in calls)


def test_a_write_that_kills_php_fails_alone_in_a_few_requests():
    client = Client(poison=6)
    calls = [Call(Write(n, {})) for n in range(1, 9)]
    send_together(client, Batching(), calls)
    assert [n for n, call in enumerate(calls, 1) if call.error] == [6]
    assert all(call.result.id == n for n, call in enumerate(calls, 1) if n != 6)
    assert client.sent == [("writes", 8), ("writes", 4), ("writes", 4), ("writes", 2), ("write", 1), ("write", 1),
                           ("writes", 2)], "halves down to one, not a request per write"


def test_a_worker_process_has_writers_writes_in_flight_at_most():
    """New users contend for one row of WordPress's options: more writers deadlock more."""
    from wpf_bridge.worker.batch import WRITERS

    batching, inside, gate = Batching(), [], threading.Event()

    class Held(Client):
        def write_many(self, writes):
            inside.append(len(writes))
            gate.wait(30)
            return super().write_many(writes)

    senders = [threading.Thread(target=send_together, args=(Held(), batching, [Call(Write(1, {})), Call(Write(2, {}))]))
               for _ in range(WRITERS)]
    for sender in senders:
        sender.start()
    try:
        wait_for(lambda: len(inside) == WRITERS, 10, f"{WRITERS} batches of writes in flight")
        assert not batching.writing.acquire(blocking=False), "one more write waits for one of them"
    finally:
        gate.set()
        for sender in senders:
            sender.join(10)
    assert batching.writing.acquire(blocking=False), "free again once they are answered"
