"""The unit tier: the rules and the steps of each action, with no WordPress, Ortto or store.

It runs in seconds. The fixtures below replace the session's real servers, so that a unit test
that asks for one fails at once instead of starting it.
"""
from __future__ import annotations

import pytest


def _not_here(name: str):
    @pytest.fixture(name=name)
    def refuse():
        pytest.fail(f"the unit tier starts no {name}: put this test beside the integration tests in tests/")

    return refuse


wordpress = _not_here("wordpress")
network = _not_here("network")
ortto_server = _not_here("ortto_server")
database_url = _not_here("database_url")
