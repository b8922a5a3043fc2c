"""The store as a queue: one worker per delivery, one delivery per person, in arrival order."""
from __future__ import annotations

import gc
import os
import sqlite3

import pytest
from conftest import ON_POSTGRES, claim_next, hold, run_sql, set_columns
from waiting import wait_for

from wpf_bridge.store import ClientBlocked, Store, migrate_store
from wpf_bridge.types import DONE, QUEUED, RETRYING, RUNNING, End


@pytest.fixture
def store(settings):
    return Store(settings.database_url)


def claimed_ids(store, n):
    return [claim_next(store, 60).id for _ in range(n)]


def test_one_person_at_a_time_in_arrival_order(store):
    first = store.ingest.add("add", "contact-a", None, None, False)[0]
    second = store.ingest.add("update", "contact-a", None, None, False)[0]
    by_email = store.ingest.add("update_tags", None, "a@example.test", None, False)[0]
    same_email = store.ingest.add("update", "contact-b", "a@example.test", None, False)[0]
    other = store.ingest.add("add", "contact-c", None, None, False)[0]

    assert claimed_ids(store, 3) == [first.id, by_email.id, other.id], "later ones for a busy person wait"
    assert claim_next(store, 60) is None
    assert store.deliveries.get(first.id).status == RUNNING and store.deliveries.get(first.id).attempts == 1
    set_columns(store, first.id, status=DONE)
    assert claim_next(store, 60).id == second.id
    set_columns(store, by_email.id, status=DONE)
    assert claim_next(store, 60).id == same_email.id


def test_a_retry_waits_for_its_time_and_holds_back_later_deliveries_for_that_person(store):
    first = store.ingest.add("add", "contact-r", None, None, False)[0]
    later = store.ingest.add("update", "contact-r", None, None, False)[0]
    assert claim_next(store, 60).id == first.id
    store.runs.retry_later(first.id, 30, "WordPress cannot be reached", owner="test|claim")

    assert claim_next(store, 60) is None, "neither the retry nor the later delivery runs yet"
    retrying = store.deliveries.get(first.id)
    assert retrying.status == RETRYING and retrying.lease_until is None
    run_sql(store, "update deliveries set run_after = run_after - 31 where id = :id", id=first.id)
    again = claim_next(store, 60)
    assert (again.id, again.attempts) == (first.id, 2)
    assert store.deliveries.get(later.id).status == QUEUED


def test_a_running_delivery_is_taken_over_only_after_its_lease(store):
    delivery = store.ingest.add("add", "contact-l", None, None, False)[0]
    claim_next(store, 60)
    assert claim_next(store, 60) is None, "held by its worker"
    run_sql(store, "update deliveries set lease_until = lease_until - 61")
    taken = claim_next(store, 60)
    assert (taken.id, taken.attempts) == (delivery.id, 2)


def test_simultaneous_claims_never_take_the_same_delivery(store):
    from concurrent.futures import ThreadPoolExecutor

    for n in range(40):
        store.ingest.add("add", f"contact-{n}", None, None, False)
    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = list(pool.map(lambda _: claim_next(store, 60), range(50)))
    ids = [c.id for c in claims if c is not None]
    assert len(ids) == 40 and len(set(ids)) == 40


def test_claimers_in_several_processes_take_each_person_in_order_one_at_a_time(settings, store):
    """Four stores (as four worker processes, each with its own connections) of two threads each
    claim groups and end them: on PostgreSQL without one lock for every claim, yet a person is
    never held twice at once, and each person's deliveries run in arrival order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    people = [f"person-{n}" for n in range(30)]
    arrived: dict[str, list[str]] = {person: [] for person in people}
    for _ in range(4):
        for person in people:
            arrived[person].append(store.ingest.add("update", person, None, None, False)[0].id)
    stores = [Store(settings.database_url) for _ in range(4)]
    guard, active, ran = threading.Lock(), set(), {person: [] for person in people}

    def work(n: int) -> None:
        mine, owner = stores[n % 4], f"w{n}|claims"
        while True:
            claimed = mine.claims.claim(60, owner, limit=3)
            if not claimed:
                if sum(map(len, ran.values())) == 120:
                    return
                continue
            with guard:
                for delivery in claimed:
                    assert delivery.contact_id not in active, f"{delivery.contact_id} held twice at once"
                    active.add(delivery.contact_id)
                    ran[delivery.contact_id].append(delivery.id)
            with guard:
                for delivery in claimed:
                    active.discard(delivery.contact_id)
            mine.runs.end([End(d.id, DONE, "ok", owner=owner) for d in claimed])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(8), timeout=120))
    assert ran == arrived
    assert store.deliveries.counts() == {DONE: 120}


@pytest.mark.skipif(not ON_POSTGRES, reason="on SQLite a claim holds the whole file (begin immediate)")
def test_a_claim_in_flight_holds_its_person_from_other_claims(settings, store):
    """With several web processes a delivery can commit after a later one for the same person: a
    claim of the later one, not yet committed, must keep other claims off the earlier one."""
    import psycopg

    from wpf_bridge.store.database import PERSON_LOCK

    earlier = store.ingest.add("update", "contact-x", None, None, False)[0]
    later = store.ingest.add("update", "contact-x", None, None, False)[0]
    run_sql(store, "update deliveries set status = 'done' where id = :id", id=earlier.id)  # not yet seen
    with psycopg.connect(store.database.url, autocommit=True) as other:
        with other.transaction():  # another worker's claim of ``later``, in flight
            other.execute("select pg_advisory_xact_lock(%s, hashtext('c:contact-x'))", (PERSON_LOCK,))
            other.execute("update deliveries set status = 'running', lease_owner = 'other|a',"
                          " lease_until = extract(epoch from clock_timestamp()) + 60 where id = %s", (later.id,))
            run_sql(store, "update deliveries set status = 'queued' where id = :id", id=earlier.id)  # now it is
            assert store.claims.claim(60, "mine|a", limit=5) == []
        assert store.claims.claim(60, "mine|a", limit=5) == [], "the later one runs: the earlier waits for it"


def test_replay_makes_a_failed_delivery_runnable_with_a_fresh_horizon(store):
    delivery = store.ingest.add("add", "contact-f", None, None, False)[0]
    claim_next(store, 60)
    set_columns(store, delivery.id, status="failed", result="WordPress said no")
    assert store.operators.requeue(delivery.id) and not store.operators.requeue(delivery.id), "only a failed delivery is replayed"
    replayed = claim_next(store, 60)
    assert (replayed.id, replayed.attempts) == (delivery.id, 1)
    assert replayed.retry_since > delivery.retry_since


@pytest.mark.sqlite_only
def test_migrate_brings_a_store_from_version_0_1_up_to_date(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "create table deliveries (id text primary key, action text not null, contact_id text, email text,"
            " role text, send_notification integer not null default 0, status text not null,"
            " attempts integer not null default 0, result text, user_id integer, secret text,"
            " created_at real not null, updated_at real not null, retry_since real not null,"
            " lease_until real, dedupe_key text)"
        )
        db.execute("insert into deliveries (id, action, contact_id, status, created_at, updated_at, retry_since)"
                   " values ('old1', 'add', 'c1', 'queued', 1, 1, 1)")
    assert migrate_store(f"sqlite:///{path}")[0] == "0001_baseline"
    store = Store(f"sqlite:///{path}")
    assert claim_next(store, 60).id == "old1"


def test_an_unexpected_error_does_not_end_a_worker_thread(settings, store, monkeypatch):
    from wpf_bridge import worker as worker_module

    monkeypatch.setattr(worker_module, "STORE_DOWN_PAUSE", 0.01)
    worker = worker_module.Worker(settings, store, threads=1)
    calls = []

    def run_next(runner):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        worker.stopping.set()
        return False

    monkeypatch.setattr(worker_module.Runner, "run_next", run_next)
    worker._loop()
    assert len(calls) == 2, "the loop went on after the error"


def test_finished_deliveries_older_than_the_keep_period_are_deleted(store):
    old_done, old_failed, old_waiting, recent = (store.ingest.add("update", f"c{i}", None, None, False)[0] for i in range(4))
    for delivery, status in ((old_done, DONE), (old_failed, "failed"), (recent, DONE)):
        store.runs.finish(delivery.id, status, "x", owner=hold(store, delivery.id))
    run_sql(store, "update deliveries set updated_at = updated_at - 31 * 86400 where id != :id", id=recent.id)

    assert store.retention.prune(30 * 86400) == 2
    assert [store.deliveries.get(d.id) is not None for d in (old_done, old_failed, old_waiting, recent)] == [False, False, True, True]


def test_previews_name_people_and_are_deleted_after_a_day(store):
    old, recent = (store.previews.ask("Ann", f"p{i}@example.com", "add", None, False) for i in range(2))
    run_sql(store, "update previews set asked_at = asked_at - 86401 where id = :id", id=old)
    store.retention.prune(30 * 86400)
    assert [p.id for p in store.previews.recent()] == [recent]


def test_console_sessions_end_when_signed_out_or_expired_and_expired_ones_are_deleted(store):
    opened = [store.sessions.open(who, "192.0.2.1", "fingerprint", 3600) for who in ("a", "b", "c")]
    (live, session), (ended, _), (expired, _) = opened
    assert store.sessions.find(live) == session, "what a sign-in gets back is what the store holds"
    store.sessions.end(ended)
    run_sql(store, "update console_sessions set expires_at = expires_at - 3601 where who = 'c'")
    assert [store.sessions.find(sid) is not None for sid in (live, ended, expired)] == [True, False, False]
    store.retention.prune(30 * 86400)
    assert [row["who"] for row in store.database.query("select who from console_sessions")] == ["a"]


def test_the_worker_prunes_on_start(settings, store):
    import dataclasses
    import threading

    from wpf_bridge.worker import Worker

    done = store.ingest.add("update", "c1", None, None, False)[0]
    store.runs.finish(done.id, DONE, "x", owner=hold(store, done.id))
    run_sql(store, "update deliveries set updated_at = updated_at - 3 * 86400")
    worker = Worker(dataclasses.replace(settings, keep_days=2), store, threads=1)
    pruner = threading.Thread(target=worker._housekeeping)
    pruner.start()
    wait_for(lambda: store.deliveries.get(done.id) is None, 10, "the old delivery to be deleted")
    worker.stopping.set()
    pruner.join(10)


def test_a_failed_delivery_loses_its_sealed_password(store):
    delivery = store.ingest.add("add", "c1", None, None, False)[0]
    set_columns(store, delivery.id, secret="sealed", push_to="c1")
    store.runs.finish(delivery.id, "failed", "refused", owner=hold(store, delivery.id))
    assert store.deliveries.get(delivery.id).secret is None


@pytest.mark.sqlite_only
def test_sqlite_files_are_readable_by_their_owner_only(tmp_path):
    loose = tmp_path / "old.db"
    loose.touch(mode=0o644)
    for path in (tmp_path / "new.db", loose):
        migrate_store(f"sqlite:///{path}")
        store = Store(f"sqlite:///{path}")
        store.ingest.add("update", "c1", None, None, False)
        for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            assert name.stat().st_mode & 0o777 == 0o600, name


def test_one_webhook_naming_the_contact_id_another_the_email_still_run_one_at_a_time(store):
    """Neither knows the other is the same person until its contact is loaded: then the later one
    goes back to the queue, uncounted, and runs once the earlier one has ended."""
    by_id = store.ingest.add("add", "contact-x", None, None, True)[0]
    by_email = store.ingest.add("add", None, "x@example.test", None, True)[0]
    assert {claim_next(store, 60, "w1|a").id, claim_next(store, 60, "w2|b").id} == {by_id.id, by_email.id}

    assert store.claims.learn(by_email.id, "contact-x", "x@example.test", "w2|b") is False, "the earlier one goes first"
    waiting = store.deliveries.get(by_email.id)
    assert (waiting.status, waiting.attempts, waiting.contact_id) == (QUEUED, 0, "contact-x")
    assert store.claims.learn(by_id.id, "contact-x", "x@example.test", "w1|a") is True
    assert claim_next(store, 60) is None, "it waits for the earlier one"
    store.runs.finish(by_id.id, DONE, "created user 7", 7, owner="w1|a")
    assert claim_next(store, 60).id == by_email.id


def test_a_write_by_a_claim_that_lost_its_lease_is_refused(store):
    delivery = store.ingest.add("add", "contact-y", None, None, False)[0]
    claim_next(store, 60, "frozen|1")
    run_sql(store, "update deliveries set lease_until = 0 where id = :id", id=delivery.id)  # it lapsed
    assert claim_next(store, 60, "other|2").id == delivery.id
    assert store.runs.finish(delivery.id, DONE, "late", owner="frozen|1") is False
    assert store.runs.retry_later(delivery.id, 5, "late", owner="frozen|1") is False
    assert store.claims.learn(delivery.id, "contact-y", "y@example.test", "frozen|1") is True  # it writes nothing
    assert store.deliveries.get(delivery.id).email is None and store.deliveries.get(delivery.id).status == RUNNING
    assert store.runs.finish(delivery.id, DONE, "applied", owner="other|2") is True
    assert [step.message for step in store.history.of(delivery.id)] == ["applied"]


def test_on_postgresql_a_webhook_s_write_is_one_round_trip(store, monkeypatch):
    """The block check, the redelivery check and the insert are one statement, in no explicit
    transaction (no BEGIN, no COMMIT), and sending it again after a lost connection adds nothing."""
    if not store.database.functions:
        pytest.skip("SQLite is a file in the process: there are no round trips")
    from wpf_bridge.store.database import PostgresDatabase

    statements, transactions = [], []
    run, begin = PostgresDatabase._run, PostgresDatabase._begin

    def counted_run(db, sql, params):
        statements.append(sql)
        return run(db, sql, params)

    def counted_begin(self, held):
        transactions.append(1)
        return begin(self, held)

    monkeypatch.setattr(PostgresDatabase, "_run", staticmethod(counted_run))
    monkeypatch.setattr(PostgresDatabase, "_begin", counted_begin)
    first, new = store.ingest.add("add", "c1", None, None, False, dedupe_key="k1", window=60, client="10.0.0.1", key_limit=(60, 5))
    again, new_again = store.ingest.add("add", "c1", None, None, False, dedupe_key="k1", window=60, client="10.0.0.1",
                                 key_limit=(60, 5))
    assert (len(statements), transactions) == (2, []), statements
    assert new and not new_again and again.id == first.id and first.status == "queued" and first.created_at > 0

    monkeypatch.setattr("uuid.uuid4", lambda: type("U", (), {"hex": first.id})())  # the same call, sent again
    resent, added = store.ingest.add("add", "c1", None, None, False, dedupe_key="k1", window=60)
    assert resent.id == first.id and added and sum(store.deliveries.counts().values()) == 1


def test_a_client_over_its_wrong_key_limit_is_refused_even_with_the_right_key(store):
    for _ in range(5):
        store.limits.key_failure("10.0.0.9", 60)
    with pytest.raises(ClientBlocked) as blocked:
        store.ingest.add("add", "c1", None, None, False, client="10.0.0.9", key_limit=(60, 5))
    assert 55 < blocked.value.wait <= 60
    assert store.ingest.add("add", "c1", None, None, False, client="10.0.0.8", key_limit=(60, 5))[1], "another client is not"
    assert sum(store.deliveries.counts().values()) == 1


def test_the_set_up_check_leaves_no_descriptor_open(settings):
    """The console runs the set-up check once a minute in its web process: each run opened a store
    whose connections (and SQLite lock-file descriptor) stayed open, 1,024 of them in 17 hours."""
    import dataclasses

    from wpf_bridge.check import run_checks

    unreachable = dataclasses.replace(settings, wordpress_url="http://127.0.0.1:9/", ortto_api_url="http://127.0.0.1:9/")
    def descriptors() -> int:
        gc.collect()  # what earlier tests left for the collector must not count either way
        return len(os.listdir("/proc/self/fd"))

    run_checks(unreachable, lambda line: None)
    before = descriptors()
    for _ in range(10):
        run_checks(unreachable, lambda line: None)
    assert descriptors() <= before


def test_only_the_claim_that_holds_a_delivery_writes_its_end(store):
    """No owner, or one that never held the delivery, writes nothing: there is no unchecked path."""
    delivery = store.ingest.add("add", "c-unclaimed", None, None, False)[0]
    assert store.runs.finish(delivery.id, DONE, "made up", owner="never|held") is False
    assert store.runs.keep_secret(delivery.id, "never|held", "sealed", "c-unclaimed") is False
    assert (store.deliveries.get(delivery.id).status, store.deliveries.get(delivery.id).secret) == (QUEUED, None)
    with pytest.raises(TypeError):
        store.runs.finish(delivery.id, DONE, "no claim named")  # type: ignore[call-arg]
