"""The fault suite: bursts of webhooks through the real Procfile processes, real WordPress and the
Ortto test server, with something broken on purpose in each. Every scenario counts what it sent
and what was applied, duplicated, lost or let in, adds a line to the ledger printed at the end of
the run, and fails if anything was duplicated, lost or let in.

``WPF_FAULTS_WORDPRESS_DOWN`` sets how long WordPress stays down (default 20 s; 180 for minutes).
"""
from __future__ import annotations

import collections
import os
import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import ON_POSTGRES, unique_email
from faults import (
    LEDGER,
    Call,
    Tally,
    add_burst,
    add_call,
    audit_new_users,
    in_flight,
    new_people,
    recovery,
    send,
    send_all,
    settle,
)
from waiting import wait_for

from wpf_bridge.types import DONE, SKIPPED


def statuses(store) -> collections.Counter:
    return collections.Counter(store.deliveries.counts())


def applied_and_running(store, applied: int, running: int) -> bool:
    """At least ``applied`` deliveries applied in WordPress (done, or their password on its way) and ``running`` running."""
    now = statuses(store)
    return now["done"] + now["pushing"] >= applied and now["running"] >= running


def access_key(env) -> str:
    return env["WPF_ACCESS_KEY"].split(",")[0]


def test_worker_killed_twice_mid_burst(start_processes, env, ortto, wordpress):
    # the default lease, 30 s; groups of 5, so that a kill finds some applied and others running
    processes = start_processes(WPF_WORKER_THREADS="4", WPF_BATCH_SIZE="5")
    people = new_people(ortto, 60, "workerkill")
    ids = add_burst(processes.urls, access_key(env), people)
    kills = []
    for done_at_least in (15, 35):
        wait_for(lambda n=done_at_least: applied_and_running(processes.store, n, 2),
                 90, f"{done_at_least} deliveries applied and two running")
        hit = in_flight(processes.store)
        processes.kill("worker")
        kills.append((time.time(), hit))
        processes.start("worker")

    tally = audit_new_users(
        Tally("kill -9 worker mid-burst", "60 adds, 4 threads per worker applying groups of 5, workers killed twice while "
              "running deliveries "
              "(lease 30 s); the restarted worker ends the dead one's leases and takes the interrupted ones over", sent=60),
        wordpress, ortto, processes.store, people, ids, calls=60)
    tally.recovery = recovery(processes.store, kills)
    tally.check()
    assert tally.retried >= 1, "the kills interrupted running deliveries"
    assert tally.recovery < 60, f"recovery took {tally.recovery:.1f} s"
    assert "worker started with 4 thread(s)" in processes.output()


def test_web_killed_mid_burst(start_processes, env, ortto, wordpress):
    processes = start_processes(WPF_WORKER_THREADS="4")
    people = new_people(ortto, 120, "webkill")
    calls = [add_call(cid) for cid, _ in people]
    with ThreadPoolExecutor(max_workers=1) as burst:
        sending = burst.submit(send_all, processes.urls, access_key(env), calls, 4)
        wait_for(lambda: sum(statuses(processes.store).values()) >= 10, 60, "the burst to be under way")
        processes.kill("web")
        processes.start("web")
        answers = sending.result()
    ids = [a["delivery_id"] for a in answers]
    retried = sum(1 for a in answers if a["tries"] > 1)

    tally = audit_new_users(
        Tally("kill -9 web mid-burst", f"120 adds from 4 senders that retry like Ortto, web killed after 10 commits; "
              f"{retried} calls resent, {sum(a['duplicate'] for a in answers)} answered as redeliveries", sent=120),
        wordpress, ortto, processes.store, people, ids, calls=120)
    tally.check()
    assert retried >= 1, "the kill hit the burst"


WORDPRESS_DOWN = float(os.environ.get("WPF_FAULTS_WORDPRESS_DOWN", "20"))


@pytest.mark.timeout(300 + 2 * WORDPRESS_DOWN)  # down, then the backoff reached by then, then the audit
def test_wordpress_down_for_a_while(start_processes, env, ortto, wordpress):
    down_for = WORDPRESS_DOWN
    processes = start_processes(WPF_WORKER_THREADS="4", WPF_BATCH_SIZE="5")  # groups of 5: some applied, some running
    before, during = new_people(ortto, 30, "wpdown"), new_people(ortto, 10, "wpdown")
    key = access_key(env)
    ids = add_burst(processes.urls, key, before)
    try:
        wait_for(lambda: applied_and_running(processes.store, 5, 1), 60, "the drain to be under way")
        wordpress.kill_server()
        stopped = time.monotonic()
        ids += add_burst(processes.urls, key, during)
        wait_for(lambda: time.monotonic() - stopped >= down_for
                 and set(statuses(processes.store)) <= {"done", "retrying"}, down_for + 120,
                 f"WordPress down {down_for:.0f} s with every unfinished delivery waiting to retry")
        waiting = statuses(processes.store)["retrying"]
    finally:
        if wordpress.process.poll() is not None:
            wordpress.start_server()
    restarted = time.monotonic()
    settle(processes.store, ids, down_for + 600)
    recovered = time.monotonic() - restarted

    tally = audit_new_users(
        Tally("WordPress stopped for a while", f"40 adds, WordPress killed mid-drain and down {down_for:.0f} s "
              f"({waiting} deliveries retrying, 10 arrived while down); all applied {recovered:.0f} s after restart", sent=40),
        wordpress, ortto, processes.store, before + during, ids, calls=40)
    tally.recovery = recovered  # from WordPress's restart: mostly the retry backoff reached while it was down
    tally.check(mail_cut_at_most=4)  # only the requests in WordPress's 4 PHP workers at the kill


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL is a server that can go away; SQLite is a file (see test_web)")
def test_database_goes_away_mid_burst(start_processes, env, ortto, wordpress, postgres_database):
    """Connections cut twice (pg_terminate_backend, as a failover or restart does), then the
    database refusing connections for a few seconds: the web answers 503 only while it cannot
    commit, the worker carries on by itself, nothing answered 202 is lost."""
    import psycopg

    processes = start_processes(WPF_WORKER_THREADS="4")
    people = new_people(ortto, 60, "dbgone")
    database = postgres_database.rsplit("/", 1)[1]
    admin = psycopg.connect(postgres_database.rsplit("/", 1)[0] + "/postgres", autocommit=True)

    def cut() -> int:
        return admin.execute("select count(pg_terminate_backend(pid)) from pg_stat_activity"
                             " where datname = %s and pid <> pg_backend_pid()", (database,)).fetchone()[0]

    def probe() -> int:
        return requests.post(f"{processes.url}/?wpf_action=update&access_key={access_key(env)}&contact_id=probe"
                             f"{time.monotonic_ns()}", timeout=10).status_code

    calls = [add_call(cid) for cid, _ in people]
    try:
        with ThreadPoolExecutor(max_workers=1) as burst:
            sending = burst.submit(send_all, processes.urls, access_key(env), calls, 4)
            cuts = []
            for done_at_least in (10, 25):
                wait_for(lambda n=done_at_least: statuses(processes.store).get("done", 0) >= n, 90, f"{done_at_least} applied")
                cuts.append(cut())
                assert probe() == 202, "a cut connection is replaced before the next commit"
            admin.execute(f"alter database {database} with allow_connections false")
            cuts.append(cut())
            assert probe() == 503, "no database: the webhook is refused so that Ortto retries"
            admin.execute(f"alter database {database} with allow_connections true")
            back = time.monotonic()
            wait_for(lambda: probe() == 202, 30, "the web to commit again")
            back = time.monotonic() - back
            answers = sending.result()
    finally:
        admin.execute(f"alter database {database} with allow_connections true")
        admin.close()
    ids = [a["delivery_id"] for a in answers]
    tally = audit_new_users(
        Tally("database connections cut mid-burst", f"60 adds from 4 senders; connections cut twice "
              f"({cuts[0]} and {cuts[1]} backends), then the database refusing connections "
              f"({sum(a['tries'] > 1 for a in answers)} calls resent after a 503)", sent=60),
        wordpress, ortto, processes.store, people, ids, calls=60 + 3)  # and the three probes answered 202
    tally.recovery = back  # from the database taking connections again to the next 202
    tally.check()


def test_same_person_by_contact_id_by_email_and_by_both(start_processes, env, ortto, wordpress):
    """Journeys name a person by contact id, by email or by both: for one new person, all three
    at once across the workers make one user, one email and one password; then updates and tag
    changes named either way leave WordPress holding the contact's last state."""
    processes = start_processes(WPF_WORKER_THREADS="4")
    key = access_key(env)
    people = new_people(ortto, 12, "handles")

    def handles(action: str, contact_id: str, email: str, query: dict | None = None) -> list[Call]:
        return [Call(action, {"campaign_id": "handles", "run_id": secrets.token_hex(6), **named}, query or {})
                for named in ({"contact_id": contact_id}, {"email": email}, {"contact_id": contact_id, "email": email})]

    adds = [call for cid, email in people for call in handles("add", cid, email, add_call(cid).query)]
    random.shuffle(adds)
    ids = [a["delivery_id"] for a in send_all(processes.urls, key, adds, concurrency=12)]
    tally = audit_new_users(
        Tally("same person, three handles", "12 new people, each added 3 times at once: by contact id, by email and by "
              "both (36 calls, 12 senders); then 3 updates and 3 tag changes each, named the same three ways", sent=36),
        wordpress, ortto, processes.store, people, ids, calls=36)

    for n, (cid, _) in enumerate(people):
        ortto.people[cid].update({"str::first": f"Renamed{n}", "tags": [f"tag-{n}", "after"]})
    changes = [call for cid, email in people for action in ("update", "update_tags") for call in handles(action, cid, email)]
    random.shuffle(changes)
    later = [a["delivery_id"] for a in send_all(processes.urls, key, changes, concurrency=12)]
    settle(processes.store, later, 120)
    tally.sent += len(changes)
    accounts = wordpress.accounts([email for _, email in people])
    for n, (cid, email) in enumerate(people):
        [user] = accounts[email]
        tags = wordpress.user_meta(user["id"], "ortto_tags")
        if user["first_name"] != f"Renamed{n}" or tags != [f"tag-{n}", "after"]:
            tally.lost += 1
            tally.problems.append(f"{email}: first name {user['first_name']!r}, tags {tags}")
    unfinished = [d for d in map(processes.store.deliveries.get, later) if d.status != DONE]
    tally.lost += len(unfinished)
    tally.problems += [f"{d.id} {d.action} {d.status}: {d.result}" for d in unfinished]
    tally.applied += len(later) - len(unfinished)
    tally.check()


def test_ortto_5xx_and_429_storm(start_processes, env, ortto, wordpress):
    processes = start_processes(WPF_WORKER_THREADS="4")
    people = new_people(ortto, 40, "orttostorm")
    ortto.fail_next(500, times=15)
    ortto.fail_next(429, {"error": {"code": "rate-limit", "message": "rate limit", "try-in-seconds": 2}}, times=15)
    ortto.fail_next(503, times=10, path="/v1/person/merge")
    ids = add_burst(processes.urls, access_key(env), people)

    tally = audit_new_users(
        Tally("Ortto 5xx and 429 storm", "40 adds while Ortto answers 15x500, 15x429 (try-in-seconds 2), 10x503 on "
              "the password push", sent=40),
        wordpress, ortto, processes.store, people, ids, calls=40, within=180)
    tally.check()
    assert not ortto.failures, "every injected failure was met"
    assert tally.retried >= 10


def test_duplicate_storms_and_redeliveries(start_processes, env, ortto, wordpress):
    processes = start_processes(WPF_WORKER_THREADS="4")
    key = access_key(env)
    resent = new_people(ortto, 5, "redeliver")
    [(storm_id, storm_email)] = new_people(ortto, 1, "storm")
    redeliveries = [add_call(cid, run="run-1") for cid, _ in resent]
    distinct = [add_call(storm_id, run=f"run-{n}") for n in range(30)]
    calls = [call for call in redeliveries for _ in range(30)] + distinct
    random.shuffle(calls)
    answers = send_all(processes.urls, key, calls, concurrency=30)
    ids = [a["delivery_id"] for a in answers]
    settle(processes.store, ids, 120)  # applied before the resends
    again = send_all(processes.urls, key, redeliveries + distinct, concurrency=8)

    tally = audit_new_users(
        Tally("duplicate storms and redeliveries", f"35 calls: 30 simultaneous copies of each of 5 adds, 30 distinct adds "
              f"for one new email; then all 35 resent after they were applied ({len(calls) + len(again)} requests)", sent=35),
        wordpress, ortto, processes.store, resent + [(storm_id, storm_email)], ids, calls=35)
    if not all(a["duplicate"] for a in again) or len(set(ids)) != 35:
        tally.duplicated += 1
        tally.problems.append(f"{len(set(ids))} delivery ids for 35 calls; resends all duplicates: {all(a['duplicate'] for a in again)}")
    tally.check()
    assert [d.status for d in map(processes.store.deliveries.get, set(ids))].count(DONE) == 35


HOSTILE = [
    ("no key", {"wpf_action": "add", "contact_id": "abc"}, None, {}, 403),
    ("bad JSON", {"wpf_action": "add"}, b"{\"contact_id\": ", {"Content-Type": "application/json"}, 400),
    ("JSON array", {"wpf_action": "add"}, b"[1, 2]", {"Content-Type": "application/json"}, 400),
    ("2 MiB body", {"wpf_action": "add"}, b"{\"x\": \"" + b"a" * (2 << 20) + b"\"}", {"Content-Type": "application/json"}, 413),
    ("unknown action", {"wpf_action": "delete_user", "contact_id": "abc"}, None, {}, 400),
    ("NUL in contact id", {"wpf_action": "add", "contact_id": "abc\x00def"}, None, {}, 400),
    ("newline in contact id", {"wpf_action": "add", "contact_id": "abc\ndef"}, None, {}, 400),
    ("300-character contact id", {"wpf_action": "add", "contact_id": "a" * 300}, None, {}, 400),
    ("SQL in contact id", {"wpf_action": "add", "contact_id": "1' or '1'='1"}, None, {}, 400),
    ("header injection in email", {"wpf_action": "add", "email": "a@example.test\r\nBcc: x@example.test"}, None, {}, 400),
    ("over-long email", {"wpf_action": "add", "email": "a" * 250 + "@example.test"}, None, {}, 400),
    ("role with SQL", {"wpf_action": "add", "contact_id": "abc", "role": "administrator'--"}, None, {}, 400),
    ("nobody named", {"wpf_action": "add"}, None, {}, 400),
]


KEY_GUESSES = [403] * 9 + [429]  # the keyless call above was the first of ten wrong keys


def test_hostile_requests_are_refused_and_store_nothing(processes, env):
    key = access_key(env)
    answers = {}
    for label, params, body, headers, _ in HOSTILE:
        query = params if label == "no key" else {**params, "access_key": key}
        answers[label] = requests.post(f"{processes.url}/", params=query, data=body, headers=headers, timeout=10)
    guesses = [requests.post(f"{processes.urls[n % len(processes.urls)]}/", timeout=10,  # across web processes
                             params={"wpf_action": "add", "access_key": f"guess-{n}", "contact_id": "abc"}).status_code
               for n in range(10)]
    locked_out = requests.post(f"{processes.url}/", params={"wpf_action": "add", "access_key": key, "contact_id": "abc"}, timeout=10)
    stored = sum(statuses(processes.store).values())
    wrong = {label: answers[label].status_code for label, *_, expected in HOSTILE if answers[label].status_code != expected}
    not_json = [label for label, answer in answers.items() if answer.headers.get("Content-Type") != "application/json"]

    tried = len(HOSTILE) + len(guesses) + 1
    as_expected = len(HOSTILE) - len(wrong) + sum(g == e for g, e in zip(guesses, KEY_GUESSES, strict=True)) + (locked_out.status_code == 429)
    tally = Tally("hostile requests", f"{len(HOSTILE)} malformed or injected calls, 10 guessed keys then the right one "
                  f"from the same address (answers {sorted(set(guesses))}, then {locked_out.status_code})",
                  sent=tried, applied=as_expected, let_in=stored + (locked_out.status_code < 300))
    tally.problems += [f"wrong status: {wrong}", f"not JSON: {not_json}", f"{stored} stored"]
    LEDGER.append(tally)
    tally.check()
    assert not wrong and not not_json
    assert guesses == KEY_GUESSES
    assert locked_out.status_code == 429


def test_privileged_users_cannot_be_taken_over(processes, env, ortto, wordpress):
    """Ortto contacts carrying an administrator's or a user manager's email, with a password,
    username, name, meta and tags mapped, sent through every action and asking for administrator."""
    manager_email = unique_email("manager")
    wordpress.php_eval("add_role('user_manager', 'User manager', array('read' => true, 'create_users' => true));")
    wordpress.rest("POST", "/wp/v2/users", json={"username": manager_email, "email": manager_email,
                                                 "password": "Manager-Pass-123", "roles": ["user_manager"]})
    targets = ["admin@example.test", manager_email]
    before = wordpress.accounts(targets)
    hostile_fields = {"str::first": "Mallory", "str:cm:wp-password-in": "Owned-123456", "str:cm:username": "mallory",
                      "str:cm:company": "Evil"}
    calls = []
    for email in targets:
        contact_id = ortto.add_person({"str::email": email, **hostile_fields}, ["owned"])
        for action in ("add", "update", "update_tags"):
            for role in ("customer", "administrator"):
                calls.append(Call(action, {"contact_id": contact_id}, {"role": role, "send_notification": "true"}))
    newcomer_email = unique_email("newcomer")
    newcomer = ortto.add_person({"str::email": newcomer_email, "str::first": "New"})
    calls.append(Call("add", {"contact_id": newcomer}, {"role": "administrator"}))
    ids = [send(processes.urls, access_key(env), call)["delivery_id"] for call in calls]
    settle(processes.store, ids, 60)

    after = wordpress.accounts(targets + [newcomer_email])
    changed = [email for email in targets if after[email] != before[email]
               or wordpress.user_meta(after[email][0]["id"], "ortto_tags") != ""
               or wordpress.user_meta(after[email][0]["id"], "company") != ""]
    records = [processes.store.deliveries.get(i) for i in ids]
    skipped = [r for r in records[:-1] if r.status == SKIPPED and "privileged" in r.result]
    admins_made = [e for e, users in after.items() if e not in targets and any("administrator" in u["roles"] for u in users)]
    tally = Tally("privileged-user take-over attempts", f"{len(calls) - 1} calls on an administrator's and a user "
                  "manager's email (password, login, name, meta, tags mapped; role administrator or customer), "
                  f"1 add asking administrator for a new person; {len(skipped)} recorded as privileged",
                  sent=len(calls), applied=len(skipped) + (records[-1].status == DONE),
                  let_in=len(changed) + len(admins_made))
    tally.problems += [f"changed: {changed}", f"administrators made: {admins_made}"]
    LEDGER.append(tally)
    tally.check()
    assert len(skipped) == len(calls) - 1
    assert after[newcomer_email][0]["roles"] == ["subscriber"]
