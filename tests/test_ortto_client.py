"""The Ortto client against the Ortto test server: shapes, empty answers, errors and rate limits."""
from __future__ import annotations

import pytest
import requests

from wpf_bridge.clients.ortto import OrttoClient, OrttoError
from wpf_bridge.errors import TransientError


@pytest.fixture
def client(ortto_server):
    return OrttoClient(ortto_server.url, ortto_server.state.api_key)


def test_get_contacts_returns_requested_fields_and_tags_and_leaves_out_unknown_ids(client, ortto):
    pid = ortto.add_person({"str::email": "a@example.test", "str::first": "A", "str::last": "B"}, ["x", "y"])
    unknown = "0000000000000000000000aa"
    found = client.get_contacts([pid, unknown], ["str::email", "str::first", "tags"])
    assert list(found) == [pid]
    assert found[pid].email == "a@example.test" and found[pid].tags == ["x", "y"] and "str::last" not in found[pid].fields
    assert ortto.calls_to("/v1/person/get-by-ids") == [
        {"contact_ids": [pid, unknown], "fields": ["str::email", "str::first", "tags"]}]


def test_unknown_email_is_none(client, ortto):
    assert client.find_by_email("nobody@example.test", ["str::email"]) is None


def test_set_field_merges_many_people_by_person_id_and_reports_each_refusal_by_person_id(client, ortto):
    """Ortto answers a merge by person id in its own order (recorded live; the test server reverses
    it), and a refusal carries no person id: results are matched by person id, not by position."""
    people = [ortto.add_person({"str::email": f"m{n}@example.test"}) for n in range(3)]
    ortto.refuse(people[0], "failed to validate field str:cm:wp-password: too long")
    refused = client.set_field("str:cm:wp-password", {pid: f"secret-{n}" for n, pid in enumerate(people)})
    assert refused[people[1]] is None and refused[people[2]] is None
    assert refused[people[0]].code == "invalid" and "too long" in refused[people[0]].reason
    assert [ortto.people[pid].get("str:cm:wp-password") for pid in people] == [None, "secret-1", "secret-2"]
    assert len(ortto.calls_to("/v1/person/merge")) == 1


def test_a_merge_ortto_refuses_whole_reports_its_reason_for_each_person(client, ortto):
    """No valid person: Ortto answers 400 with the reasons in ``details``; each person gets its own."""
    first, second = ortto.add_person({"str::email": "u@example.test"}), ortto.add_person({"str::email": "v@example.test"})
    refused = client.set_field("str:cm:does-not-exist", {first: "x", second: "y"})
    reason = ("Ortto did not save str:cm:does-not-exist: invalid (failed to validate field str:cm:does-not-exist "
              "in schema: Object not found)")
    assert {pid: (r.code, r.reason) for pid, r in refused.items()} == dict.fromkeys((first, second), ("invalid", reason))


def test_other_refusals_carry_ortto_s_reason(client, ortto):
    ortto.fail_next(400, {"request_id": "r", "code": 400, "error": "bad request", "details": [{"error": "limit"}]})
    with pytest.raises(OrttoError, match="HTTP 400: bad request: limit"):
        client.custom_fields()


def test_a_shared_rate_limiter_paces_requests(ortto_server, ortto):
    import time

    from wpf_bridge.clients.http import RateLimiter

    client = OrttoClient(ortto_server.url, ortto_server.state.api_key, limiter=RateLimiter(20, burst=2))
    started = time.monotonic()
    for _ in range(12):
        client.custom_fields()
    assert time.monotonic() - started >= 10 / 20 * 0.95, "two at once, then 20 a second"
    assert len(ortto.calls_to("/v1/person/custom-field/get")) == 12


def test_rate_limit_carries_try_in_seconds(client, ortto):
    ortto.fail_next(429, {"error": {"code": "rate-limit", "message": "rate limit", "try-in-seconds": 7}})
    with pytest.raises(TransientError) as error:
        client.custom_fields()
    assert error.value.retry_after == 7


def test_server_errors_are_transient_and_bad_key_is_not(client, ortto_server, ortto):
    ortto.fail_next(502)
    with pytest.raises(TransientError):
        client.custom_fields()
    with pytest.raises(OrttoError, match="refused the API key"):
        OrttoClient(ortto_server.url, "wrong").custom_fields()


def test_custom_fields_lists_the_accounts_fields_with_their_type(client, ortto):
    ortto.declare("str:cm:plan", display_type="single_select")
    fields = client.custom_fields()
    assert fields["str:cm:wp-password"] == "text" and fields["str:cm:plan"] == "single_select"
    assert "str::email" not in fields


def test_the_test_server_refuses_undeclared_fields_and_honours_unset_tags(ortto_server, ortto):
    with pytest.raises(ValueError, match="declare the custom field str:cm:nope first"):
        ortto.add_person({"str::email": "x@example.test", "str:cm:nope": "1"})
    pid = ortto.add_person({"str::email": "t@example.test"}, ["a", "b"])
    answer = requests.post(ortto_server.url + "/v1/person/merge", headers={"X-Api-Key": ortto.api_key}, json={
        "people": [{"fields": {"str::person_id": pid}, "tags": ["c"], "unset_tags": ["a"]},
                   {"fields": {"str::person_id": pid, "str:cm:nope": "1"}}],
        "merge_by": ["str::person_id"]})
    assert answer.json()["people"] == [  # in an order of Ortto's, not the request's
        {"status": "invalid", "error": "failed to validate field str:cm:nope in schema: Object not found"},
        {"person_id": pid, "status": "merged"}]
    assert ortto.people[pid]["tags"] == ["b", "c"]


def test_the_test_servers_admin_page_lists_people_read_only(ortto_server, ortto):
    pid = ortto.add_person({"str::email": "admin-view@example.test", "str::first": "<b>Jo</b>"}, ["vip"])
    page = requests.get(ortto_server.url + "/admin", timeout=10)
    assert page.status_code == 200 and pid in page.text and "admin-view@example.test" in page.text
    assert "&lt;b&gt;Jo&lt;/b&gt;" in page.text and "<b>Jo</b>" not in page.text
    assert not requests.post(ortto_server.url + "/admin", timeout=10).ok, "nothing but GET"


def test_people_pages_through_every_person_with_the_scans_cursor(client, ortto):
    ortto.people.clear()
    ids = [ortto.add_person({"str::email": f"p{n}@example.test"}, ["vip"] if n % 3 == 0 else []) for n in range(1203)]
    pages = list(client.people(["str::email", "tags"]))
    assert [len(page) for page in pages] == [500, 500, 203]
    assert [c.id for page in pages for c in page] == ids
    assert sum("vip" in c.tags for page in pages for c in page) == 401
    requests_sent = ortto.calls_to("/v1/person/get")
    assert [r.get("offset") for r in requests_sent] == [None, 500, 1000]
    assert requests_sent[0].get("cursor_id") is None and len({r.get("cursor_id") for r in requests_sent[1:]}) == 1


def test_people_on_an_empty_account_is_one_empty_page(client, ortto):
    ortto.people.clear()
    assert list(client.people(["str::email"])) == [[]]


def test_the_test_server_refuses_what_ortto_refuses(ortto_server, ortto):
    url, key = f"{ortto_server.url}/v1/person/get", {"X-Api-Key": ortto.api_key}
    for body in ({"limit": 501, "fields": ["str::email"]},
                 {"limit": 10, "fields": ["str::email"], "offset": 10, "cursor_id": "made-up"},
                 {"limit": 10, "fields": ["str::email"], "filter": {"$str::starts": {"field_id": "str::email", "value": "a"}}}):
        assert requests.post(url, json=body, headers=key).status_code == 400, body


def post(ortto_server, ortto, path: str, body: dict) -> requests.Response:
    return requests.post(ortto_server.url + path, headers={"X-Api-Key": ortto.api_key}, json=body, timeout=10)


def test_the_test_server_merges_by_email_as_the_live_api_does(ortto_server, ortto):
    """Recorded live: a merge by email finds the existing person (any case) and answers merged;
    a new email is created; a new person on the suppression list is refused, an existing one is not."""
    existing = ortto.add_person({"str::email": "Jane@Example.test", "str::first": "Jane"})
    ortto.suppressed.add("held@example.test")
    answer = post(ortto_server, ortto, "/v1/person/merge", {
        "people": [{"fields": {"str::email": "jane@example.test", "str::name": "Jane Doe"}, "tags": ["new"]},
                   {"fields": {"str::email": "fresh@example.test"}},
                   {"fields": {"str::email": "held@example.test"}}],
        "merge_by": ["str::email"], "suppression_list_field_id": "str::email", "async": False})
    merged, created, held = answer.json()["people"]
    assert merged == {"person_id": existing, "status": "merged"}
    assert created["status"] == "created" and created["person_id"] != existing
    assert held == {"status": "suppressed", "error": "Email is suppressed"}
    assert ortto.people[existing]["tags"] == ["new"] and ortto.people[existing]["str::name"] == "Jane Doe"

    refused = post(ortto_server, ortto, "/v1/person/merge", {
        "people": [{"fields": {"str::email": "x@example.test", "str::invalid_field": "1"}}], "merge_by": ["str::email"]})
    assert refused.status_code == 400
    body = refused.json()
    assert set(body) == {"request_id", "code", "error", "details"} and body["code"] == 400
    assert body["error"] == "No valid contacts provided (failed to validate field str::invalid_field in schema: Object not found)"
    assert body["details"] == [{"status": "invalid", "error": "failed to validate field str::invalid_field in schema: Object not found"}]


def test_the_test_server_pages_as_the_live_api_does(ortto_server, ortto):
    """Recorded live: next_offset is the offset plus the people returned; a page past the end has
    no people, no cursor and every number 0; an offset without a cursor is accepted; every result
    carries its organization link."""
    ortto.people.clear()
    for n in range(12):
        ortto.add_person({"str::email": f"page{n}@example.test"})
    first = post(ortto_server, ortto, "/v1/person/get", {"limit": 100, "fields": ["str::email"]}).json()
    assert (first["offset"], first["next_offset"], first["has_more"], len(first["contacts"])) == (0, 12, False, 12)
    assert all("idt::o" in c["fields"] for c in first["contacts"])
    past = post(ortto_server, ortto, "/v1/person/get",
                {"limit": 100, "fields": ["str::email"], "offset": 12, "cursor_id": first["cursor_id"]}).json()
    assert past == {"contacts": None, "meta": {"total_contacts": 0, "total_organizations": 0, "total_matches": 0,
                                               "total_subscribers": 0},
                    "offset": 0, "next_offset": 0, "cursor_id": "000000000000000000000000", "has_more": False}
    no_cursor = post(ortto_server, ortto, "/v1/person/get", {"limit": 5, "fields": ["str::email"], "offset": 10})
    assert no_cursor.status_code == 200 and len(no_cursor.json()["contacts"]) == 2


def test_the_test_server_lists_tags_as_the_live_api_does(ortto_server, ortto):
    """Recorded live: a bare array; ids are not unique; organization tags are mixed in; q filters."""
    ortto.add_person({"str::email": "t1@example.test"}, ["vip", "Paid"])
    ortto.add_person({"str::email": "t2@example.test"}, ["vip"])
    tags = post(ortto_server, ortto, "/v1/tags/get", {}).json()
    assert isinstance(tags, list)
    by_name = {t["name"]: t for t in tags}
    assert by_name["vip"]["count"] == by_name["vip"]["subscribers"] == 2 and by_name["vip"]["type"] == ""
    assert any(t["type"] == "organization" and "subscribers" not in t for t in tags)
    assert len({t["id"] for t in tags}) < len(tags), "ids are not unique"
    assert [t["name"] for t in post(ortto_server, ortto, "/v1/tags/get", {"q": "pai"}).json()] == ["Paid"]
