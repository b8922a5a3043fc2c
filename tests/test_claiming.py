"""A worker thread's claim: a small group fills while webhooks keep arriving, for a bounded moment;
a lone webhook waits one look. The store is real (SQLite or PostgreSQL); time is the test's."""
from __future__ import annotations

import dataclasses
import secrets

import pytest

from wpf_bridge.settings import load_settings
from wpf_bridge.store import Store
from wpf_bridge.worker.claiming import LOOKS, claim_group


@pytest.fixture
def store(database_url):
    return Store(database_url)


@pytest.fixture
def settings(database_url):
    env = {"WPF_ACCESS_KEY": "k" * 16, "WORDPRESS_URL": "http://wp.test", "WORDPRESS_USER": "u",
           "WORDPRESS_APP_PASSWORD": "p", "ORTTO_API_KEY": "o", "WPF_SECRET_KEY": "s" * 32, "DATABASE_URL": database_url}
    return dataclasses.replace(load_settings(env), batch_size=10, batch_fill_ms=200)


class Arrivals:
    """The test's clock, and webhooks that arrive while the claim waits: ``per_look`` at each look."""

    def __init__(self, store, per_look: list[int]):
        self.store, self.per_look, self.now, self.waited = store, per_look, 0.0, []

    def wait(self, seconds: float) -> None:
        self.now += seconds
        self.waited.append(seconds)
        for _ in range(self.per_look.pop(0) if self.per_look else 0):
            add(self.store)

    def clock(self) -> float:
        return self.now


def add(store):
    """A webhook for a new person."""
    return store.ingest.add("add", secrets.token_hex(12), None, None, False)[0]


def claim(store, settings, arrivals):
    return claim_group(store, settings, "test|claim", arrivals.wait, arrivals.clock)


def test_a_lone_webhook_waits_one_look_and_no_more(store, settings):
    lone, arrivals = add(store), Arrivals(store, [])
    assert [d.id for d in claim(store, settings, arrivals)] == [lone.id]
    assert arrivals.waited == [settings.batch_fill_seconds / LOOKS]


def test_a_group_fills_while_webhooks_arrive_but_never_waits_past_the_moment(store, settings):
    add(store)
    arrivals = Arrivals(store, [2] * 20)
    group = claim(store, settings, arrivals)
    assert len(group) == 1 + 2 * LOOKS, "every look found some"
    assert len(arrivals.waited) == LOOKS and sum(arrivals.waited) == pytest.approx(settings.batch_fill_seconds)


def test_a_group_goes_once_webhooks_stop_arriving_or_it_is_full(store, settings):
    add(store)
    stopped = Arrivals(store, [3, 0, 5])
    assert len(claim(store, settings, stopped)) == 4 and len(stopped.waited) == 2
    full = Arrivals(store, [20])
    add(store)
    assert len(claim(store, settings, full)) == settings.batch_size and len(full.waited) == 1
    for _ in range(settings.batch_size):
        add(store)
    none = Arrivals(store, [5])
    assert len(claim(store, settings, none)) == settings.batch_size and none.waited == [], "a full group goes at once"


def test_no_moment_no_waiting(store, settings):
    add(store)
    arrivals = Arrivals(store, [5])
    assert len(claim(store, dataclasses.replace(settings, batch_fill_ms=0), arrivals)) == 1
    assert arrivals.waited == []
