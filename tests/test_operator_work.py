"""Operator work is done by a worker: the console records a bulk replay or asks for the set-up
check, answers at once, and a worker does the work and stores its progress and result, which
every web process shows alike."""
from __future__ import annotations

import socket
import time

from conftest import run_sql
from console_client import CONSOLE_PASSWORD, sign_in, token

from wpf_bridge.settings import load_settings
from wpf_bridge.store import Store
from wpf_bridge.types import FAILED, QUEUED
from wpf_bridge.web import create_app
from wpf_bridge.worker.operators import OperatorWork


def failed_deliveries(store: Store, count: int) -> list[str]:
    ids = [store.ingest.add("update", f"c-{n}", None, None, False)[0].id for n in range(count)]
    run_sql(store, "update deliveries set status = 'failed', updated_at = updated_at - 60")
    return ids


def ask_replay(client) -> str:
    sign_in(client)
    answer = client.post("/console/replay", data={"status": "failed", "csrf_token": token(client, "/console/")})
    assert answer.status_code == 302
    return answer.headers["Location"].split("?")[0].rsplit("/", 1)[1]


def test_a_bulk_replay_is_recorded_by_the_web_process_and_done_by_a_worker(console_settings, client):
    store = Store(console_settings.database_url)
    failed_deliveries(store, 5)
    action_id = ask_replay(client)
    asked = store.operators.operator_action(action_id)
    assert (asked["matched"], asked["done"], asked["finished_at"]) == (5, 0, None)
    assert store.deliveries.counts() == {FAILED: 5}, "the web process replays nothing itself"

    assert OperatorWork(console_settings, store).run_once()
    assert store.deliveries.counts() == {QUEUED: 5}
    assert client.get(f"/console/actions/{action_id}?progress=1").get_json() == {
        "matched": 5, "done": 5, "finished": True}
    assert store.operators.take_replay("another|operator", 60) is None, "nothing left to replay"


def test_a_replay_whose_worker_froze_is_carried_on_by_another_once(console_settings, client):
    store = Store(console_settings.database_url)
    failed_deliveries(store, 7)
    action_id = ask_replay(client)
    frozen = "frozen:1|operator"
    taken = store.operators.take_replay(frozen, 60)
    assert store.operators.replay_chunk(taken, frozen, 60, chunk=3) == (3, False)
    run_sql(store, "update operator_actions set lease_until = 0 where id = :id", id=action_id)  # its lease lapsed

    assert OperatorWork(console_settings, store).run_once()
    assert store.operators.replay_chunk(taken, frozen, 60, chunk=3) is None, "woken up: it writes nothing"
    found = store.operators.operator_action(action_id)
    assert (found["matched"], found["done"], found["finished_at"] is not None) == (7, 7, True)
    replays = [step.call for d in store.deliveries.find(limit=None) for step in store.history.of(d.id)]
    assert (replays.count("replay"), store.deliveries.counts()) == (7, {QUEUED: 7}), "each replayed once"


def test_every_web_process_shows_the_check_a_worker_ran(env, console_settings, client):
    """Two web processes (apps) show the same result and the same age; a WordPress that does not
    answer is a problem, never "All checks passed"."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    down = load_settings({**env, "WPF_CONSOLE_PASSWORD": CONSOLE_PASSWORD,
                          "WORDPRESS_URL": f"http://127.0.0.1:{port}"})
    first, second = create_app(down).test_client(), create_app(down).test_client()
    sign_in(first)
    sign_in(second)
    assert "Checking WordPress and Ortto" in first.get("/console/check").text, "asked for; no worker ran it yet"
    assert "No worker is alive: the set-up check is run by a worker process" in first.get("/console/check").text
    store = Store(down.database_url)
    store.marks.beat("test:1")
    assert "No worker is alive" not in first.get("/console/check").text
    assert OperatorWork(down, store).run_once()
    shown = [first.get("/console/check").text, second.get("/console/check").text]
    assert shown[0] == shown[1]
    assert "1 problem found" in shown[0] and "All checks passed" not in shown[0]
    assert "the roles are checked once WordPress answers" in shown[0], "what was not checked is said"
    assert f"127.0.0.1:{port}" in shown[0]
    assert "checking again" not in shown[0], "a minute has not passed: nothing asked for again"

    first.get("/console/?recheck=1")
    assert "checking again" in second.get("/console/check").text
    assert OperatorWork(down, store).run_once()
    assert not OperatorWork(down, store).run_once()


def test_the_check_shows_no_secret(console_settings, client):
    sign_in(client)
    client.get("/console/check")
    store = Store(console_settings.database_url)
    assert OperatorWork(console_settings, store).run_once()
    shown = client.get("/console/check").text
    assert "All checks passed" in shown and "Return Password" in shown
    [row] = store.database.query("select lines from checks")
    for secret in console_settings.secrets():
        assert secret not in shown and secret not in row["lines"]
    started = time.monotonic()
    assert client.get("/console/").status_code == 200 and time.monotonic() - started < 5


def test_a_delivery_gone_wrong_after_a_passing_check_has_it_run_again_within_seconds(console_settings, client):
    """"All checks passed" stands for a minute, but not once a delivery failed or waits for a retry
    since: WordPress may have stopped after the check."""
    sign_in(client)
    client.get("/console/check")
    store = Store(console_settings.database_url)
    assert OperatorWork(console_settings, store).run_once()
    run_sql(store, "update checks set finished_at = finished_at - 10")  # passed 10 s ago
    assert "checking again" not in client.get("/console/check").text, "nothing went wrong since: it stands"
    store.ingest.add("update", "c-1", None, None, False)
    run_sql(store, "update deliveries set status = 'retrying'")  # as a worker leaves it when WordPress is down
    shown = client.get("/console/check").text
    assert "All checks passed" in shown and "checking again" in shown
    assert store.checks.waiting_since() is not None, "a worker is asked for a new check"
