"""Shared fixtures: one real WordPress and one Ortto test server for the session, a fresh bridge per test."""
from __future__ import annotations

import os
import secrets
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from console_client import CONSOLE_PASSWORD
from ortto_server import OrttoServer
from procfile import Processes
from waiting import wait_for
from wordpress_site import WordPressSite

from wpf_bridge import companion
from wpf_bridge.settings import Settings, load_settings
from wpf_bridge.store import migrate_store

PASSWORD_FIELD = "str:cm:wp-password"


@pytest.fixture(scope="session")
def wordpress() -> WordPressSite:
    site = WordPressSite(companion.source()).start()
    yield site
    site.stop()


@pytest.fixture(scope="session")
def network() -> WordPressSite:
    """A multisite WordPress (a network of sites) with the companion plugin."""
    site = WordPressSite(companion.source(), multisite=True).start()
    yield site
    site.stop()


@pytest.fixture(scope="session")
def ortto_server() -> OrttoServer:
    server = OrttoServer().start()
    server.state.declare(PASSWORD_FIELD, "str:cm:username", "str:cm:wp-password-in", "str:cm:company",
                         "str:cm:login-email", "str:cm:display-name")
    yield server
    server.stop()


@pytest.fixture
def ortto(ortto_server: OrttoServer):
    """The Ortto server's state, with no failures or calls left over from another test."""
    state = ortto_server.state
    state.failures.clear()
    state.calls.clear()
    yield state
    state.failures.clear()
    state.refusing.clear()
    state.suppressed.clear()
    for gate in state.gates.values():
        gate.set()
    state.gates.clear()


ON_POSTGRES = os.environ.get("WPF_TEST_DATABASE", "sqlite") == "postgresql"
POSTGRES_SERVER = os.environ.get("WPF_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def pytest_collection_modifyitems(items) -> None:
    """On the PostgreSQL pass, a test about SQLite itself is skipped, and so is one that never opens
    the delivery store (no fixture of it depends on ``postgres_database``): the rules alone, the
    companion plugin against WordPress, settings and files. Its result cannot differ between the
    passes, so it runs once, in the SQLite pass; a test that names PostgreSQL in a ``skipif`` runs."""
    if ON_POSTGRES:
        for item in items:
            if item.get_closest_marker("sqlite_only"):
                item.add_marker(pytest.mark.skip(reason="about SQLite itself"))
            elif "postgres_database" not in getattr(item, "fixturenames", ()) and not item.get_closest_marker("skipif"):
                item.add_marker(pytest.mark.skip(reason="opens no delivery store: run once, in the SQLite pass"))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    """On PostgreSQL runs, one database for the session, dropped at the end."""
    if not ON_POSTGRES:
        yield None
        return
    import psycopg

    name = "wpf_test_" + secrets.token_hex(6)
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"create database {name}")
    yield f"{POSTGRES_SERVER}/{name}"
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"drop database {name} with (force)")


@pytest.fixture
def database_url(tmp_path: Path, postgres_database: str | None) -> Iterator[str]:
    """An empty store for one test, migrated as a release step would: a new SQLite file, or a new
    schema in the session's PostgreSQL database (what a process of an earlier test still writes
    lands in that test's schema)."""
    url = fresh_database(tmp_path, postgres_database)
    migrate_store(url)
    yield url


def fresh_database(tmp_path: Path, postgres_database: str | None) -> str:
    """A database URL with nothing in it yet: no table, not migrated."""
    if postgres_database is None:
        return f"sqlite:///{tmp_path / 'bridge.db'}"
    import psycopg

    schema = "t_" + secrets.token_hex(6)
    with psycopg.connect(postgres_database, autocommit=True) as db:
        db.execute(f"create schema {schema}")
    return f"{postgres_database}?options=-csearch_path%3D{schema}"


@contextmanager
def store_locked(database_url: str) -> Iterator[None]:
    """Hold the deliveries table from another connection: the bridge's writes wait, then give up."""
    if not ON_POSTGRES:
        blocker = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("begin exclusive")
    else:
        import psycopg

        blocker = psycopg.connect(database_url, autocommit=True)
        blocker.execute("begin")
        blocker.execute("lock table deliveries in access exclusive mode")
    try:
        yield
    finally:
        blocker.execute("rollback")
        blocker.close()


@pytest.fixture
def env(tmp_path: Path, wordpress: WordPressSite, ortto_server: OrttoServer, database_url: str) -> dict[str, str]:
    """A complete, valid bridge environment pointing at the test WordPress and Ortto."""
    field_map = tmp_path / "fields.toml"
    field_map.write_text(
        '[fields]\nfirst_name = "str::first"\nlast_name = "str::last"\n'
        'user_login = "str:cm:username"\nuser_pass = "str:cm:wp-password-in"\n'
        '[meta]\ncompany = "str:cm:company"\nbilling_city = "geo::city"\nphone = "phn::phone"\n'
    )
    return {
        "WPF_ACCESS_KEY": "test-key-" + secrets.token_hex(8) + ",second-key-123",
        "WORDPRESS_URL": wordpress.url,
        "WORDPRESS_USER": wordpress.admin_user,
        "WORDPRESS_APP_PASSWORD": wordpress.app_password,
        "ORTTO_API_KEY": ortto_server.state.api_key,
        "ORTTO_API_URL": ortto_server.url,
        "ORTTO_PASSWORD_FIELD": PASSWORD_FIELD,
        "WPF_ALLOWED_ROLES": "customer,member",
        "WPF_FIELD_MAP": str(field_map),
        "DATABASE_URL": database_url,
        "WPF_SECRET_KEY": secrets.token_hex(16),
        "PORT": "8000",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env)


@pytest.fixture
def bridge(settings: Settings):
    """A worker in the test's own process (``inprocess.Bridge``) on the test's store."""
    from inprocess import Bridge  # it imports this module

    return Bridge(settings)


def run_sql(store, sql: str, **params) -> None:
    """Change the store behind the bridge's back (make a retry due, age a lease), on either database."""
    with store.database.transaction() as tx:
        tx.execute(sql, params)


def set_columns(store, delivery_id: str, **values: object) -> None:
    """Put a delivery in a state a test needs (status, result, secret...), behind the store's back."""
    columns = ", ".join(f"{name} = :{name}" for name in values)
    run_sql(store, f"update deliveries set {columns} where id = :delivery_id", delivery_id=delivery_id, **values)


def hold(store, delivery_id: str, owner: str = "test|claim") -> str:
    """Claim one given delivery for a test (as a worker's claim would hold it); the claim's owner,
    which every write that ends the run must name."""
    set_columns(store, delivery_id, status="running", lease_owner=owner, lease_until=9e9)
    return owner


def claim_next(store, lease_seconds: float, owner: str = "test|claim"):
    """The store's oldest runnable delivery, claimed alone (the worker claims groups); ``None`` if none is."""
    claimed = store.claims.claim(lease_seconds, owner)
    return claimed[0] if claimed else None


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(5)}@example.test"


@pytest.fixture
def console_settings(env):
    """The test's settings with the operator console on."""
    return load_settings({**env, "WPF_CONSOLE_PASSWORD": CONSOLE_PASSWORD})


@pytest.fixture
def client(console_settings):
    """Flask's test client of a web process with the console on (see console_client)."""
    from wpf_bridge.web import create_app

    return create_app(console_settings).test_client()


@pytest.fixture
def start_processes(env, tmp_path):
    """Start the Procfile processes with extra settings (two of each on PostgreSQL, one on
    SQLite); they are stopped after the test."""
    started = []

    def start(**extra: str) -> Processes:
        procs = Processes({**env, **extra}, tmp_path, instances=2 if ON_POSTGRES else 1)
        started.append(procs)
        wait_for(procs.up, 30, "web to answer /health")
        return procs

    yield start
    for procs in started:
        procs.stop()


@pytest.fixture
def processes(start_processes):
    return start_processes()


def pytest_terminal_summary(terminalreporter) -> None:
    """The fault suite's ledger: what each scenario tried, and what was applied, duplicated or lost."""
    from faults import LEDGER, ledger_table

    if LEDGER:
        where = "PostgreSQL, 2 web + 2 worker processes" if ON_POSTGRES else "SQLite, 1 web + 1 worker process"
        terminalreporter.write_sep("=", f"fault suite on {where}")
        terminalreporter.write_line(ledger_table())
