"""The delivery store's claims: one worker per delivery, one delivery per person, in arrival order."""
from __future__ import annotations

import pytest

from wpf_bridge import worker as worker_module
from wpf_bridge.store import DONE, Store, sqlite_path
from wpf_bridge.worker import RetryLater, Runner


@pytest.fixture
def store(settings):
    return Store(sqlite_path(settings.database_url))


def test_one_person_at_a_time_in_arrival_order(store):
    first = store.add("add", "contact-a", None, None, False)[0]
    second = store.add("update", "contact-a", None, None, False)[0]
    by_email = store.add("update_tags", None, "a@example.test", None, False)[0]
    same_email = store.add("update", "contact-b", "a@example.test", None, False)[0]
    other = store.add("add", "contact-c", None, None, False)[0]

    assert store.claim(second.id, 60) is None and store.waiting(second.id), "waits behind the first"
    assert store.claim(same_email.id, 60) is None, "the same email waits too"
    assert store.claim(other.id, 60) is not None, "another person is not held up"
    claimed = store.claim(first.id, 60)
    assert claimed.status == "running" and claimed.attempts == 1
    assert store.claim(first.id, 60) is None and not store.waiting(first.id), "held by its worker"
    assert store.claim(by_email.id, 60) is not None
    store.update(first.id, status=DONE)
    assert store.claim(second.id, 60) is not None
    store.update(by_email.id, status=DONE)
    assert store.claim(same_email.id, 60) is not None


def test_runner_gives_the_thread_back_when_an_earlier_delivery_runs_long(settings, store, monkeypatch):
    monkeypatch.setattr(worker_module, "WAIT_IN_THREAD", 0.2)
    first = store.add("add", "contact-z", None, None, False)[0]
    later = store.add("update", "contact-z", None, None, False)[0]
    store.claim(first.id, 60)
    with pytest.raises(RetryLater):
        Runner(settings, store).run(later.id)
    assert store.get(later.id).status == "queued" and store.get(later.id).attempts == 0


def test_a_queue_entry_taken_by_a_killed_worker_is_queued_again(settings, store):
    """The worker took Huey's entry, then died before claiming: the sweeper re-enqueues it once."""
    import sqlite3

    from wpf_bridge.queue import DeliveryQueue
    from wpf_bridge.webhook import read_webhook

    queue = DeliveryQueue(settings, store)
    delivery, _ = queue.submit(read_webhook({"wpf_action": "add", "contact_id": "lost1"}, None))
    assert queue.huey.dequeue() is not None and queue.huey.pending_count() == 0
    assert queue.sweep() == [], "a fresh queued delivery is left alone"
    with sqlite3.connect(store.path) as db:
        db.execute("update deliveries set updated_at = updated_at - ? where id = ?", (settings.lease_seconds + 1, delivery.id))
    assert queue.sweep() == [delivery.id] and queue.huey.pending_count() == 1
    assert queue.sweep() == [], "once per lease period, not at every sweep"
    assert queue.huey.dequeue().args == (delivery.id,)
