"""Shared fixtures: one real WordPress and one Ortto test server for the session, a fresh bridge per test."""
from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ortto_server import OrttoServer  # noqa: E402
from procfile import Processes  # noqa: E402
from waiting import wait_for  # noqa: E402
from wordpress_site import WordPressSite  # noqa: E402

from wpf_bridge import companion  # noqa: E402
from wpf_bridge.settings import Settings, load_settings  # noqa: E402

PASSWORD_FIELD = "str:cm:wp-password"


@pytest.fixture(scope="session")
def wordpress() -> WordPressSite:
    site = WordPressSite(companion.source()).start()
    yield site
    site.stop()


@pytest.fixture(scope="session")
def ortto_server() -> OrttoServer:
    server = OrttoServer().start()
    server.state.custom_fields.update({PASSWORD_FIELD, "str:cm:username", "str:cm:wp-password-in", "str:cm:company"})
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
    for gate in state.gates.values():
        gate.set()
    state.gates.clear()


@pytest.fixture
def env(tmp_path: Path, wordpress: WordPressSite, ortto_server: OrttoServer) -> dict[str, str]:
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
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.db'}",
        "WPF_SECRET_KEY": secrets.token_hex(16),
        "PORT": "8000",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(5)}@example.test"


@pytest.fixture
def start_processes(env, tmp_path):
    """Start the Procfile processes with extra settings; they are stopped after the test."""
    started = []

    def start(**extra: str) -> Processes:
        procs = Processes({**env, **extra}, tmp_path)
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
        terminalreporter.write_sep("=", "fault suite")
        terminalreporter.write_line(ledger_table())
