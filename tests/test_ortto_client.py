"""The Ortto client against the Ortto test server: shapes, empty answers, errors and rate limits."""
from __future__ import annotations

import pytest

from wpf_bridge.errors import TransientError
from wpf_bridge.ortto import OrttoClient, OrttoError


@pytest.fixture
def client(ortto_server):
    return OrttoClient(ortto_server.url, ortto_server.state.api_key)


def test_get_contact_returns_requested_fields_and_tags(client, ortto):
    pid = ortto.add_person({"str::email": "a@example.test", "str::first": "A", "str::last": "B"}, ["x", "y"])
    contact = client.get_contact(pid, ["str::email", "str::first", "tags"])
    assert contact.id == pid and contact.email == "a@example.test" and contact.tags == ["x", "y"]
    assert "str::last" not in contact.fields
    assert ortto.calls_to("/v1/person/get-by-ids") == [{"contact_ids": [pid], "fields": ["str::email", "str::first", "tags"]}]


def test_unknown_contact_and_unknown_email_are_none(client, ortto):
    assert client.get_contact("0000000000000000000000aa", ["str::email"]) is None
    assert client.find_by_email("nobody@example.test", ["str::email"]) is None


def test_set_field_merges_by_person_id(client, ortto):
    pid = ortto.add_person({"str::email": "m@example.test"})
    client.set_field(pid, "str:cm:wp-password", "secret-value")
    assert ortto.people[pid]["str:cm:wp-password"] == "secret-value"


def test_set_field_on_suppressed_person_is_an_error(client, ortto):
    pid = ortto.add_person({"str::email": "s@example.test"})
    ortto.suppressed.add(pid)
    with pytest.raises(OrttoError, match="suppressed"):
        client.set_field(pid, "str:cm:wp-password", "x")


def test_unknown_field_is_a_permanent_error(client, ortto):
    pid = ortto.add_person({"str::email": "u@example.test"})
    with pytest.raises(OrttoError, match="HTTP 400: No valid contacts"):
        client.set_field(pid, "str:cm:does-not-exist", "x")


def test_rate_limit_carries_try_in_seconds(client, ortto):
    ortto.fail_next(429, {"error": {"code": "rate-limit", "message": "rate limit", "try-in-seconds": 7}})
    with pytest.raises(TransientError) as error:
        client.check_key()
    assert error.value.retry_after == 7


def test_server_errors_are_transient_and_bad_key_is_not(client, ortto_server, ortto):
    ortto.fail_next(502)
    with pytest.raises(TransientError):
        client.check_key()
    with pytest.raises(OrttoError, match="refused the API key"):
        OrttoClient(ortto_server.url, "wrong").check_key()
