"""Leases that live while their worker does: a slow delivery is never run twice, a frozen
worker's delivery is taken over and its late outcome refused, a stopping worker finishes or hands
back what it runs. Real Procfile processes, real WordPress, the Ortto test server holding calls."""
from __future__ import annotations

import os
import signal
import time

import requests
from conftest import PASSWORD_FIELD, run_sql, unique_email
from inprocess import can_log_in
from waiting import wait_for

from wpf_bridge.types import DONE

CONTACTS = "/v1/person/get-by-ids"


def send_add(procs, env, ortto, prefix: str) -> tuple[str, str, str]:
    """One new person and her ``add``; (delivery id, contact id, email)."""
    email = unique_email(prefix)
    contact_id = ortto.add_person({"str::email": email, "str::first": prefix.title()})
    answer = requests.post(f"{procs.url}/?wpf_action=add&send_notification=true",
                           headers={"X-WPF-Access-Key": env["WPF_ACCESS_KEY"].split(",")[0]}, json={"contact_id": contact_id})
    assert answer.status_code == 202
    return answer.json()["delivery_id"], contact_id, email


def in_flight(start_processes, env, ortto, prefix: str, **settings: str):
    """The Procfile processes with ``settings``, and one new person's ``add`` held mid-run while
    Ortto takes its time loading her: (processes, the gate that lets Ortto answer, delivery id,
    contact id, email)."""
    procs = start_processes(**settings)
    gate = ortto.hold(CONTACTS)
    delivery_id, contact_id, email = send_add(procs, env, ortto, prefix)
    wait_for(lambda: ortto.calls_to(CONTACTS), 30, "the worker to be loading the contact")
    return procs, gate, delivery_id, contact_id, email


def one_whole_user(wordpress, ortto, contact_id: str, email: str) -> None:
    [user] = wordpress.users_with_email(email)
    assert len(wordpress.emails_to(email)) == 1
    assert can_log_in(wordpress, user["username"], ortto.people[contact_id][PASSWORD_FIELD])


def runs(store, delivery_id: str, call: str = "add") -> int:
    return sum(1 for step in store.history.of(delivery_id) if step.call == call)


def test_a_delivery_slower_than_its_lease_is_renewed_not_run_twice(start_processes, env, ortto, wordpress):
    procs, gate, delivery_id, contact_id, email = in_flight(start_processes, env, ortto, "slow",
                                                            WPF_LEASE_SECONDS="3", WPF_WORKER_THREADS="4")
    first = procs.store.deliveries.get(delivery_id).lease_until
    wait_for(lambda: procs.store.deliveries.get(delivery_id).lease_until > first + 6, 20, "two more leases' worth of renewals")
    held = procs.store.deliveries.get(delivery_id)
    assert (held.status, held.attempts) == ("running", 1), "nobody took it over"
    assert len(ortto.calls_to(CONTACTS)) == 1
    gate.set()
    procs.wait_until_applied([delivery_id])
    assert procs.store.deliveries.get(delivery_id).attempts == 1 and runs(procs.store, delivery_id) == 1
    one_whole_user(wordpress, ortto, contact_id, email)


def test_a_frozen_worker_is_taken_over_and_its_late_outcome_refused(start_processes, env, ortto, wordpress):
    # one delivery thread, held by Ortto outside any store transaction when frozen; on SQLite a
    # process frozen inside a write would stall every writer until it resumes (one host, one file)
    procs, gate, delivery_id, contact_id, email = in_flight(start_processes, env, ortto, "frozen", WPF_LEASE_SECONDS="3",
                                                            WPF_WORKER_THREADS="1")
    frozen = {name: procs.procs[name] for name in procs.names["worker"]}
    for proc in frozen.values():
        os.killpg(proc.pid, signal.SIGSTOP)  # alive but frozen: its leases lapse
    try:
        procs.start("worker")
        wait_for(lambda: procs.store.deliveries.get(delivery_id).attempts == 2, 30, "another worker to take the delivery over")
        gate.set()
        procs.wait_until_applied([delivery_id])
        taken_over = procs.store.deliveries.get(delivery_id)
        for proc in frozen.values():
            os.killpg(proc.pid, signal.SIGCONT)  # it wakes up with its Ortto answer and carries on
        wait_for(lambda: "another worker took it over" in procs.output(), 30, "the woken worker to find its lease gone")
    finally:
        for proc in frozen.values():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert procs.store.deliveries.get(delivery_id) == taken_over, "the late outcome was not written"
    one_whole_user(wordpress, ortto, contact_id, email)


def test_sigterm_lets_running_deliveries_finish_then_exits_0(start_processes, env, ortto, wordpress):
    procs, gate, delivery_id, contact_id, email = in_flight(start_processes, env, ortto, "stopping", WPF_STOP_SECONDS="30")
    for name in procs.names["worker"]:
        os.killpg(procs.procs[name].pid, signal.SIGTERM)
    wait_for(lambda: "finishing running deliveries, then stopping" in procs.output(), 10, "the worker to take SIGTERM")
    gate.set()  # the delivery goes on and ends, its password pushed, before the process exits
    codes = {name: procs.procs[name].wait(40) for name in procs.names["worker"]}
    assert set(codes.values()) == {0}, procs.output()
    assert procs.store.deliveries.get(delivery_id).status == DONE
    one_whole_user(wordpress, ortto, contact_id, email)


def test_sigterm_hands_back_what_cannot_finish_in_time(start_processes, env, ortto, wordpress):
    # two seconds to stop, where the default lease (30 s) would be far longer
    procs, gate, delivery_id, contact_id, email = in_flight(start_processes, env, ortto, "handback", WPF_STOP_SECONDS="2")
    stopped_at = time.monotonic()
    for name in procs.names["worker"]:
        os.killpg(procs.procs[name].pid, signal.SIGTERM)
    codes = {name: procs.procs[name].wait(20) for name in procs.names["worker"]}
    assert set(codes.values()) == {0}, procs.output()
    assert "handed 1 running deliveries back" in procs.output()
    assert not procs.store.figures.worker_alive(), "a worker that stopped says so at once, not 30 s later"
    handed = procs.store.deliveries.get(delivery_id)
    assert handed.status == "running" and handed.lease_until == 0, "claimable at once, not after its lease"
    gate.set()
    procs.start("worker")
    procs.wait_until_applied([delivery_id])
    assert time.monotonic() - stopped_at < 30, "taken over before its lease would have ended"
    one_whole_user(wordpress, ortto, contact_id, email)


def test_a_worker_that_wakes_after_its_lease_passed_cannot_replace_the_kept_password(settings, ortto, wordpress,
                                                                                       monkeypatch):
    """A worker freezes after it found no user and no kept password, while it generates one; its
    lease lapses, a second worker creates the user and keeps its own password; the first wakes and
    keeps the password it generated. That late write must be refused: else the password that
    reaches Ortto is not the user's."""
    import importlib
    import threading

    from inprocess import Bridge, person

    from wpf_bridge.types import PUSHING
    from wpf_bridge.worker import Runner

    frozen, second = Bridge(settings), Bridge(settings)
    contact_id, email = person(ortto)
    delivery = frozen.store.ingest.add("add", contact_id, None, None, False)[0]
    generating, wake = threading.Event(), threading.Event()
    add = importlib.import_module("wpf_bridge.actions.add")  # the package's ``add`` is the function
    real_generate = add.generate_password

    def generate_then_freeze() -> str:
        if threading.current_thread().name == "frozen":
            generating.set()
            wake.wait(60)
        return real_generate()

    monkeypatch.setattr(add, "generate_password", generate_then_freeze)
    first = threading.Thread(target=frozen.runner.run_next, name="frozen")
    first.start()
    try:
        assert generating.wait(30), "the first worker is generating a password"
        run_sql(frozen.store, "update deliveries set lease_until = 0 where id = :id", id=delivery.id)  # its lease lapses
        assert Runner(settings, second.store, second.shared).run_next()
        assert second.store.deliveries.get(delivery.id).status == PUSHING
    finally:
        wake.set()
        first.join(60)
    second.shared.pusher.push_due()

    [user] = wordpress.users_with_email(email)
    assert second.store.deliveries.get(delivery.id).status == DONE
    assert can_log_in(wordpress, user["username"], ortto.people[contact_id][PASSWORD_FIELD]), \
        "the password in Ortto is the one the user was created with"
