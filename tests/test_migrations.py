"""Numbered migrations: only `migrate` changes the schema, a store from the last release keeps every
row, and a process that finds the schema behind says what to run."""
from __future__ import annotations

import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
from conftest import fresh_database

from wpf_bridge.store import SchemaBehind, Store, migrate_store
from wpf_bridge.store.database import connect
from wpf_bridge.store.migrations import LATEST, version
from wpf_bridge.types import DONE, FAILED, QUEUED

ROOT = Path(__file__).resolve().parent.parent
LAST_RELEASE = "10807a1071e873109a514120c29b4bb7e4a0e9f3"  # the last landing before numbered migrations

# Run by the last release's code, on its own schema: a row in every table it has.
FILL = """
import sys, time
import wpf_bridge
from wpf_bridge.store import Store
assert wpf_bridge.__file__.startswith(sys.argv[2]), wpf_bridge.__file__
store = Store(sys.argv[1])
done, _ = store.add("add", "c-done", "done@example.test", "customer", True, dedupe_key="k1", window=60, shape="GET")
store.claim(60, "w1|a")
store.finish(done.id, "done", "user 7 created", 7, call="add", owner="w1|a")
failed, _ = store.add("update", "c-failed", None, None, False)
store.claim(60, "w1|b")
store.finish(failed.id, "failed", "refused", call="update", owner="w1|b")
store.add("update_tags", None, "queued@example.test", None, False)
store.key_failure("203.0.113.9", 60)
store.key_failure("console", 60, total=True)
store.count_refusals({"access_key: wrong": (3, time.time())}, [(time.time(), 403, "access_key: wrong", "203.0.113.9")])
store.start_action("ops", "replayed 1 failed delivery", 1)
store.move_mark("alerts", None, 1234.5)
store.beat("host:1")
store.sessions.open("ops", "203.0.113.10", "fingerprint", 3600)
print(done.id, failed.id)
"""


def tables(database_url: str) -> dict[str, list[tuple]]:
    """Every table's rows, in a stable order, read straight from the database."""
    database = connect(database_url)
    try:
        if database_url.startswith("sqlite"):
            names = [row["name"] for row in database.query("select name from sqlite_master where type = 'table'")]
        else:
            names = [row["table_name"] for row in database.query(
                "select table_name from information_schema.tables where table_schema = current_schema()")]
        return {name: sorted((tuple(sorted(row.items())) for row in database.query(f"select * from {name}")), key=repr)
                for name in names}
    finally:
        database.close()


@pytest.fixture(scope="module")
def last_release(tmp_path_factory) -> Path:
    """The last release's ``wpf_bridge`` package, taken from git history."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", LAST_RELEASE, "wpf_bridge"], capture_output=True)
    assert archive.returncode == 0, f"git history lacks the last release {LAST_RELEASE}: {archive.stderr.decode()}"
    folder = tmp_path_factory.mktemp("last-release")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def test_a_store_from_the_last_release_keeps_every_row(tmp_path, postgres_database, last_release):
    url = fresh_database(tmp_path, postgres_database)
    filled = subprocess.run([sys.executable, "-c", FILL, url, str(last_release)], cwd=last_release, capture_output=True, text=True,
                            env={"PYTHONPATH": str(last_release), "PATH": "/usr/bin:/bin"})
    assert filled.returncode == 0, filled.stderr
    done_id, failed_id = filled.stdout.split()
    before = tables(url)
    assert before and all(before.values()), f"the last release left a table empty: {before}"

    with pytest.raises(SchemaBehind, match="run `wpf-bridge migrate`"):
        Store(url)
    assert tables(url) == before, "opening a store changed it"

    assert migrate_store(url) == [f"{n:04d}_{name}" for n, name in applied_names()]
    after = tables(url)
    for table, rows in before.items():
        columns = {column for column, _ in rows[0]}  # new columns may be added; none lost
        kept = sorted((tuple(item for item in row if item[0] in columns) for row in after[table]), key=repr)
        assert kept == rows, f"{table} lost or changed rows"

    store = Store(url)
    assert store.deliveries.get(done_id).status == DONE
    assert store.deliveries.get(done_id).user_id == 7
    assert [step.call for step in store.history.of(failed_id)] == ["update"]
    assert store.deliveries.counts() == {DONE: 1, FAILED: 1, QUEUED: 1}
    assert store.operators.requeue(failed_id, "ops")
    assert store.marks.get("alerts") == 1234.5
    assert store.limits.key_block("203.0.113.9", 60, 1) > 0


PREVIOUS_LANDING = "a90f556"  # the last landing, whose schema is 0003: what the release step upgrades now

FILL_0003 = """
import sys
import wpf_bridge
from wpf_bridge.accounts import Change, Profile
from wpf_bridge.store import Store, migrate_store
assert wpf_bridge.__file__.startswith(sys.argv[2]), wpf_bridge.__file__
migrate_store(sys.argv[1])  # that landing's migrations: 0001 to 0003
store = Store(sys.argv[1])
delivery, _ = store.ingest.add("add", "c-1", "one@example.test", "customer", True)
store.outbound.add([Change(5, "new", 9, "2026-12-04 10:00:00", Profile(9, "new@example.test", ("subscriber",), {}, {}))], 60)
store.operators.start_action("ops", "replayed 1 failed delivery", 1)
store.checks.ask("ops", 60)
store.marks.beat("host:1")
store.sessions.open("ops", "203.0.113.10", "fingerprint", 3600)
print(delivery.id)
"""


def test_a_store_from_the_previous_landing_gains_previews_and_keeps_every_row(tmp_path, postgres_database):
    """The release step after the last landing applies 0004 alone, on a store that landing wrote."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS_LANDING, "wpf_bridge"], capture_output=True)
    assert archive.returncode == 0, archive.stderr.decode()
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp_path / "previous", filter="data")
    url = fresh_database(tmp_path, postgres_database)
    filled = subprocess.run([sys.executable, "-c", FILL_0003, url, str(tmp_path / "previous")], cwd=tmp_path / "previous",
                            capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path / "previous"), "PATH": "/usr/bin:/bin"})
    assert filled.returncode == 0, filled.stderr
    before = tables(url)
    for table in ("deliveries", "outbound_changes", "operator_actions", "checks", "heartbeats", "console_sessions"):
        assert before[table], f"the previous landing left {table} empty"

    assert migrate_store(url) == ["0004_previews"]
    after = tables(url)
    assert {name: rows for name, rows in after.items() if name in before and name != "schema_migrations"} == {
        name: rows for name, rows in before.items() if name != "schema_migrations"}, "every row kept, unchanged"
    store = Store(url)
    assert store.deliveries.get(filled.stdout.strip()).email == "one@example.test"
    assert store.previews.get(store.previews.ask("ops", "one@example.test", "add", None, False)).person == "one@example.test"


def applied_names() -> list[tuple[int, str]]:
    from wpf_bridge.store.migrations import migrations

    return [(migration.number, migration.name) for migration in migrations()]


def test_only_migrate_changes_the_schema(tmp_path, postgres_database):
    """A process opening an empty store creates nothing and says what to run; `migrate` applies
    every migration once, in order, and a second run finds nothing to do."""
    url = fresh_database(tmp_path, postgres_database)
    with pytest.raises(SchemaBehind) as behind:
        Store(url)
    assert str(behind.value) == (f"the delivery store's schema is at version 0, this wpf-bridge needs {LATEST}:"
                                 " run `wpf-bridge migrate` (Heroku's release step and the systemd migrate unit run it)")
    assert tables(url) == {}

    assert len(migrate_store(url)) == LATEST
    assert migrate_store(url) == []
    database = connect(url)
    assert version(database) == LATEST
    database.close()
    Store(url).close()


def test_a_newer_schema_is_accepted_while_a_release_rolls_out(tmp_path, postgres_database):
    """During a release, processes of the previous version still run on the migrated store."""
    url = fresh_database(tmp_path, postgres_database)
    migrate_store(url)
    database = connect(url)
    with database.transaction() as tx:
        tx.execute("insert into schema_migrations (number, name, applied_at) values (:n, 'later', 0)",
                   {"n": LATEST + 1})
    database.close()
    Store(url).close()
