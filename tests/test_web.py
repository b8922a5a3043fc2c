"""The webhook endpoint: authentication, validation and durable hand-off, on a real SQLite store."""
from __future__ import annotations

import json
import time

import pytest
from conftest import hold, run_sql, store_locked
from waiting import wait_for

from wpf_bridge.store import database
from wpf_bridge.web import create_app

FLAT = {  # journey "send to webhook" shape
    "campaign_id": "c1", "campaign_name": "Journey", "contact_id": "0061b12ed91681ad2bbe4100",
    "email": "contact@example.com", "id": "evt-1", "run_id": "r1", "shape_id": "1", "webhook_id": "w1",
    "time": "2023-12-13T23:28:09.895030588Z",
}
NESTED = {  # activity data source shape
    "activity": {"id": "a1", "field_id": "act::s-all", "created": "2023-10-03T04:11:23Z", "attr": {"str::is": "API"}},
    "contact": {"contact_id": "00651b946baa9be6b2edad00", "email": "abhi@example.com", "first_name": "Abhi"},
    "id": "00651b946cef87c7af64f4f3", "time": "2023-10-03T04:11:24.25726779Z", "webhook_id": "651b8aec8002153e16319fd3",
}


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def key(settings):
    return settings.access_keys[0]


def stored(app):
    return app.extensions["wpf_bridge"]["store"].deliveries.find(limit=100)


def test_flat_payload_is_stored_runnable(client, app, key):
    response = client.post(f"/?wpf_action=add&access_key={key}&role=customer&send_notification=true", json=FLAT)
    assert response.status_code == 202
    body = response.get_json()
    assert body["success"] is True
    [delivery] = stored(app)
    assert delivery.id == body["delivery_id"]
    assert (delivery.action, delivery.contact_id, delivery.email) == ("add", FLAT["contact_id"], FLAT["email"])
    assert (delivery.role, delivery.send_notification) == ("customer", True)


def test_nested_payload_uses_contact_contact_id_not_event_id(client, app, key):
    response = client.post(f"/webhook?wpf_action=update_user&access_key={key}", json=NESTED)
    assert response.status_code == 202
    [delivery] = stored(app)
    assert (delivery.action, delivery.contact_id, delivery.email) == ("update", NESTED["contact"]["contact_id"], "abhi@example.com")


@pytest.mark.parametrize(
    "query, payload, expected",
    [
        ("&contact_id=fromquery", FLAT, "fromquery"),
        ("", {"contact": {"contact_id": "nested"}, "id": "top"}, "nested"),
        ("", {"id": "toplevel"}, "toplevel"),
    ],
)
def test_contact_id_precedence(client, app, key, query, payload, expected):
    assert client.post(f"/?wpf_action=add&access_key={key}{query}", json=payload).status_code == 202
    assert stored(app)[0].contact_id == expected


def test_get_with_query_parameters_only(client, app, key):
    response = client.get(f"/?wpf_action=update_tags&access_key={key}&email=a@example.com")
    assert response.status_code == 202
    assert stored(app)[0].email == "a@example.com"


def test_form_body_parameters(client, app, key):
    response = client.post("/", data={"wpf_action": "add_user", "access_key": key, "contact_id": "abc123"})
    assert response.status_code == 202
    assert stored(app)[0].action == "add"


def test_second_key_and_header_key_are_accepted(client, app, settings):
    assert client.post(f"/?wpf_action=add&access_key={settings.access_keys[1]}", json=FLAT).status_code == 202
    other_run = {**FLAT, "run_id": "r2"}
    assert client.post("/?wpf_action=add", json=other_run, headers={"X-WPF-Access-Key": settings.access_keys[0]}).status_code == 202
    assert len(stored(app)) == 2


@pytest.mark.parametrize("query", ["wpf_action=add", "wpf_action=add&access_key=wrong", "wpf_action=add&access_key="])
def test_wrong_or_missing_key_is_403_and_stores_nothing(client, app, query):
    response = client.post(f"/?{query}", json=FLAT)
    assert response.status_code == 403
    assert response.get_json() == {"success": False, "error": "wrong or missing access_key"}
    assert stored(app) == []


@pytest.mark.parametrize(
    "query, body, content_type, message",
    [
        ("wpf_action=delete", json.dumps(FLAT), "application/json", "unknown action"),
        ("", json.dumps(FLAT), "application/json", "wpf_action is required"),
        ("wpf_action=add", '{"contact_id": ', "application/json", "not valid JSON"),
        ("wpf_action=add", "[1, 2]", "application/json", "must be an object"),
        ("wpf_action=add", "{}", "application/json", "neither a contact id nor an email"),
        ("wpf_action=add&email=not-an-email", "", None, "email"),
        ("wpf_action=add", json.dumps({"contact_id": "abc\u0000def"}), "application/json", "contact id"),
        ("wpf_action=add", json.dumps({"contact_id": 12345}), "application/json", "contact_id"),
        ("wpf_action=add&role=Admin%20istrator", json.dumps(FLAT), "application/json", "role"),
        ("wpf_action=add", '{"contact_id": "x"', "text/plain", "not valid JSON"),
    ],
)
def test_bad_requests_are_400_and_store_nothing(client, app, key, query, body, content_type, message):
    response = client.post(f"/?{query}&access_key={key}", data=body, content_type=content_type)
    assert response.status_code == 400
    assert response.get_json()["success"] is False and message in response.get_json()["error"]
    assert stored(app) == []


def test_body_over_one_mebibyte_is_413(client, app, key):
    big = json.dumps({**FLAT, "padding": "x" * (1024 * 1024)})
    response = client.post(f"/?wpf_action=add&access_key={key}", data=big, content_type="application/json")
    assert response.status_code == 413 and response.get_json()["success"] is False
    assert stored(app) == []


@pytest.mark.parametrize(
    "query, payload",
    [("wpf_action=test", None), ("wpf_action=add", {"activity": {"field_id": "act::test_webhook"}, "contact": {}})],
)
def test_test_action_and_ortto_test_event_answer_success_and_store_nothing(client, app, key, query, payload):
    response = client.post(f"/?{query}&access_key={key}", json=payload)
    assert response.status_code == 200 and response.get_json() == {"success": True}
    assert stored(app) == []


def test_test_action_still_needs_the_key(client):
    assert client.get("/?wpf_action=test").status_code == 403


def test_store_that_cannot_be_written_is_503(settings, key, monkeypatch):
    monkeypatch.setattr(database, "BUSY_TIMEOUT", 0.2)
    app = create_app(settings)
    with store_locked(settings.database_url):
        response = app.test_client().post(f"/?wpf_action=add&access_key={key}", json=FLAT)
    assert response.status_code == 503 and response.get_json()["success"] is False
    assert stored(app) == []


def test_unknown_path_and_method_are_json_errors(client, key):
    assert client.get("/nope").status_code == 404 and client.get("/nope").get_json()["success"] is False
    assert client.put(f"/?wpf_action=add&access_key={key}").status_code == 405


def test_health(client):
    assert client.get("/health").get_json() == {"status": "ok"}


@pytest.mark.parametrize("payload", [FLAT, NESTED], ids=["journey run ids", "activity event id"])
def test_redelivery_answers_the_original_delivery_and_stores_nothing(client, app, key, payload):
    first = client.post(f"/?wpf_action=add&access_key={key}", json=payload).get_json()
    again = client.post(f"/?wpf_action=add&access_key={key}", json={**payload, "time": "later"})
    assert again.status_code == 202
    assert again.get_json()["delivery_id"] == first["delivery_id"] and again.get_json()["duplicate"] is True
    assert first["duplicate"] is False
    assert len(stored(app)) == 1


@pytest.mark.parametrize(
    "second_query, second_payload",
    [
        ("wpf_action=update", FLAT),
        ("wpf_action=add", {**FLAT, "run_id": "another-run"}),
        ("wpf_action=add", {**NESTED, "id": "another-event"}),
    ],
)
def test_different_calls_are_not_duplicates(client, app, key, second_query, second_payload):
    client.post(f"/?wpf_action=add&access_key={key}", json=FLAT)
    second = client.post(f"/?{second_query}&access_key={key}", json=second_payload).get_json()
    assert second["duplicate"] is False and len(stored(app)) == 2


def test_identical_call_without_ortto_ids_is_a_duplicate_only_within_the_window(client, app, key, settings):
    url = f"/?wpf_action=update&access_key={key}&contact_id=abc123"
    first = client.get(url).get_json()
    assert client.get(url).get_json()["delivery_id"] == first["delivery_id"]
    run_sql(app.extensions["wpf_bridge"]["store"], "update deliveries set created_at = created_at - 121")
    later = client.get(url).get_json()
    assert later["duplicate"] is False and later["delivery_id"] != first["delivery_id"]


@pytest.mark.parametrize("started", ["running", "done", "failed"])
def test_an_identical_call_without_ortto_ids_once_the_first_has_started_is_a_new_delivery(client, app, key, started):
    """A tag added, then removed a minute later, sends the same plain URL twice: the second must run,
    since the first may have read the contact before the removal. While the first still waits, the
    second is a repeat (the first reads the contact as it is when it runs)."""
    url = f"/?wpf_action=update_tags&access_key={key}&contact_id=abc123"
    first = client.get(url).get_json()
    assert client.get(url).get_json()["duplicate"] is True
    run_sql(app.extensions["wpf_bridge"]["store"], "update deliveries set status = :status", status=started)
    again = client.get(url).get_json()
    assert again["duplicate"] is False and again["delivery_id"] != first["delivery_id"]
    assert client.get(url).get_json()["delivery_id"] == again["delivery_id"], "a repeat of the waiting one"


@pytest.mark.parametrize("payload", [FLAT, NESTED], ids=["journey run ids", "activity event id"])
def test_ortto_redelivers_for_48_hours_and_pruning_keeps_what_it_needs(client, app, key, payload):
    """Ortto retries one delivery for up to a day; the bridge recognises it for 48 h. The store's
    clock is moved by ageing the rows (on PostgreSQL the clock is the database's own), and the
    worker's pruning at the shortest WPF_KEEP_DAYS (2) runs in between."""
    store = app.extensions["wpf_bridge"]["store"]
    first = client.post(f"/?wpf_action=add&access_key={key}", json=payload).get_json()["delivery_id"]
    run_sql(store, "update deliveries set status = 'done'")
    for age, redelivery in ((47 * 3600 + 59 * 60, True), (48 * 3600 + 60, False)):
        run_sql(store, "update deliveries set created_at = :at, updated_at = :at where id = :id",
                at=time.time() - age, id=first)
        assert store.retention.prune(2 * 86400) == (0 if redelivery else 1), "kept exactly while Ortto may redeliver it"
        again = client.post(f"/?wpf_action=add&access_key={key}", json={**payload, "time": "later"}).get_json()
        assert again["duplicate"] is redelivery and (again["delivery_id"] == first) is redelivery, age
    assert [d.id for d in stored(app)] != [first] and len(stored(app)) == 1


@pytest.mark.sqlite_only  # the store's clock is this process's on SQLite (PostgreSQL's is the server's)
def test_the_48_hour_window_with_the_clock_moved_on(client, app, key, monkeypatch):
    """The same, moving the clock itself rather than the rows: a redelivery 47 h 59 min after the
    first call is recognised, one 48 h 1 min after is a new delivery."""
    from wpf_bridge.store import database

    started = time.time()
    first = client.post(f"/?wpf_action=add&access_key={key}", json=FLAT).get_json()["delivery_id"]
    for hours, redelivery in ((47 + 59 / 60, True), (48 + 1 / 60, False)):
        monkeypatch.setattr(database.time, "time", lambda h=hours: started + h * 3600)
        again = client.post(f"/?wpf_action=add&access_key={key}", json=FLAT).get_json()
        assert again["duplicate"] is redelivery and (again["delivery_id"] == first) is redelivery, hours


def test_simultaneous_redeliveries_store_one_delivery(app, key):
    from concurrent.futures import ThreadPoolExecutor

    def post(_):
        return app.test_client().post(f"/?wpf_action=add&access_key={key}", json=FLAT).get_json()["delivery_id"]

    with ThreadPoolExecutor(max_workers=30) as pool:
        ids = set(pool.map(post, range(30)))
    assert len(ids) == 1 and len(stored(app)) == 1


def test_wrong_keys_are_rate_limited_per_client(app, key, settings):
    attacker, other = app.test_client(), app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    other.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    answers = [attacker.post(f"/?wpf_action=add&access_key=guess{i}", json=FLAT).status_code for i in range(12)]
    assert answers == [403] * 10 + [429] * 2
    blocked = attacker.post(f"/?wpf_action=add&access_key={key}", json=FLAT)
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["Retry-After"]) <= 60
    assert stored(app) == []
    assert other.post(f"/?wpf_action=add&access_key={key}", json=FLAT).status_code == 202
    run_sql(app.extensions["wpf_bridge"]["store"], "update key_failures set window_start = window_start - 61")
    assert attacker.post(f"/?wpf_action=add&access_key={key}", json={**FLAT, "run_id": "r9"}).status_code == 202


def test_trusted_proxy_address_is_the_client(settings, key):
    import dataclasses

    app = create_app(dataclasses.replace(settings, trusted_proxies=1))
    client = app.test_client()
    for i in range(10):
        client.post(f"/?wpf_action=add&access_key=guess{i}", json=FLAT, headers={"X-Forwarded-For": "203.0.113.50"})
    behind_same_proxy = client.post(f"/?wpf_action=add&access_key={key}", json=FLAT, headers={"X-Forwarded-For": "192.0.2.1"})
    assert behind_same_proxy.status_code == 202
    assert client.post(f"/?wpf_action=add&access_key={key}", json=FLAT, headers={"X-Forwarded-For": "203.0.113.50"}).status_code == 429


def test_the_wrong_key_limit_and_the_same_call_window_are_settings(settings, key):
    import dataclasses

    app = create_app(dataclasses.replace(settings, key_failure_limit=3, same_call_seconds=0))
    client = app.test_client()
    assert [client.get(f"/?wpf_action=add&contact_id=c&access_key=guess{i}").status_code for i in range(4)] == [403] * 3 + [429]
    fresh = app.test_client()
    fresh.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    url = f"/?wpf_action=update&access_key={key}&contact_id=abc123"
    first, second = fresh.get(url).get_json(), fresh.get(url).get_json()
    assert second["duplicate"] is False and second["delivery_id"] != first["delivery_id"]


def test_ipv6_clients_are_counted_per_64(app, key):
    def client_at(address):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        return client

    for i in range(10):  # each guess from another address of one /64
        assert client_at(f"2001:db8:1:2::{i + 1:x}").get(f"/?wpf_action=test&access_key=guess{i}").status_code == 403
    assert client_at("2001:db8:1:2:ffff::9").get(f"/?wpf_action=test&access_key={key}").status_code == 429
    assert client_at("2001:db8:1:3::1").get(f"/?wpf_action=test&access_key={key}").status_code == 200


def test_the_wrong_key_table_stays_bounded(app, monkeypatch):
    from wpf_bridge.store import limits as store_module

    monkeypatch.setattr(store_module, "MAX_KEY_CLIENTS", 50)
    store = app.extensions["wpf_bridge"]["store"]
    run_sql(store, "insert into key_failures (client, window_start, failures) values ('198.51.100.1', 0, 3)")
    for i in range(120):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"203.0.113.{i}" if i < 100 else f"192.0.2.{i}"
        assert client.get("/?wpf_action=test&access_key=wrong-key").status_code == 403
    clients = {row["client"] for row in store.database.query("select client from key_failures")}
    assert len(clients) == 50 and "198.51.100.1" not in clients, "old windows pruned, newest kept"
    assert "192.0.2.119" in clients


def test_a_proxy_in_front_without_trusted_proxies_is_warned_about_once(app, key, caplog):
    proxied = app.test_client()
    proxied.environ_base["REMOTE_ADDR"] = "127.0.0.1"
    for _ in range(3):
        proxied.get(f"/?wpf_action=test&access_key={key}", headers={"X-Forwarded-For": "203.0.113.7"})
    warnings = [r.getMessage() for r in caplog.records if "X-Forwarded-For" in r.getMessage()]
    assert len(warnings) == 1 and "WPF_TRUSTED_PROXIES=0" in warnings[0] and key not in warnings[0]


def test_a_public_client_with_x_forwarded_for_or_a_set_trusted_proxies_is_not_warned_about(settings, key, caplog):
    import dataclasses

    for app, address in ((create_app(settings), "8.8.4.4"), (create_app(dataclasses.replace(settings, trusted_proxies=1)), "127.0.0.1")):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        client.get(f"/?wpf_action=test&access_key={key}", headers={"X-Forwarded-For": "203.0.113.7"})
    assert not [r for r in caplog.records if "X-Forwarded-For" in r.getMessage()]


def test_refused_webhooks_are_logged_with_reason_and_who_and_counted(app, key, caplog):
    client = app.test_client()
    client.get("/?wpf_action=add&access_key=wrong-key&contact_id=abc123")
    client.get(f"/?wpf_action=add&access_key={key}&email=not-an-email")
    client.get(f"/?wpf_action=add&access_key={key}&email=not-an-email")
    client.post(f"/?wpf_action=add&access_key={key}", data="{oops", content_type="application/json")
    client.get(f"/?wpf_action=add&access_key={key}&contact_id=abc%0a123")

    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused webhook")]
    assert logged[0].startswith("refused webhook: 403 access_key: wrong; from 127.0.0.1, for abc123")
    assert "400 email: Not a valid email address.; from 127.0.0.1, for not-an-email" in logged[1]
    assert "400 body: the body is not valid JSON" in logged[3]
    assert logged[4].endswith("for abc?123"), "control characters from the sender never reach the log as such"
    assert all(key not in line and "wrong-key" not in line for line in logged)
    store = app.extensions["wpf_bridge"]["store"]
    wait_for(lambda: sum(count for _, count, _ in store.refusals.by_reason()) == 5, 10, "the counts to be written")
    counts = {reason: count for reason, count, _ in store.refusals.by_reason()}
    assert counts == {"access_key: wrong": 1, "email: Not a valid email address.": 2,
                      "body: the body is not valid JSON": 1, "contact_id: not an Ortto contact id": 1}


def test_ready_reports_the_store_the_worker_and_the_backlog(app, settings):
    import time

    store = app.extensions["wpf_bridge"]["store"]
    client = app.test_client()
    idle = client.get("/ready")
    assert idle.status_code == 200 and idle.get_json()["waiting"] == 0

    store.marks.beat("host:1")
    waiting = store.ingest.add("update", "abc123", None, None, False)[0]
    fresh = client.get("/ready").get_json()
    assert fresh["status"] == "ok" and fresh["waiting"] == 1 and fresh["worker_heartbeat_seconds_ago"] < 5

    run_sql(store, "update deliveries set created_at = :old", old=time.time() - settings.stall_seconds - 60)
    stalled = client.get("/ready")
    assert stalled.status_code == 503 and stalled.get_json()["status"] == "stalled"
    assert "none was applied" in stalled.get_json()["problem"]

    applied = store.ingest.add("update", "def456", None, None, False)[0]
    store.runs.finish(applied.id, "done", "updated user 3", call="update", owner=hold(store, applied.id))
    assert client.get("/ready").status_code == 200, "deliveries wait, but the worker is applying them"
    assert waiting.id


def test_ready_is_503_when_the_store_cannot_be_read(settings, monkeypatch):
    from wpf_bridge.store import StoreUnavailable
    from wpf_bridge.store.figures import Figures

    app = create_app(settings)

    def down(self):
        raise StoreUnavailable("delivery store unavailable: disk I/O error")

    monkeypatch.setattr(Figures, "health", down)
    answer = app.test_client().get("/ready")
    assert answer.status_code == 503 and answer.get_json() == {"status": "unavailable", "store": "unreachable"}
    assert app.test_client().get("/health").status_code == 200, "liveness reads nothing"


def test_a_blocked_client_cannot_tell_the_right_key_by_any_answer(app, key):
    """While blocked, the right key gets the same answer as a wrong one, whatever the call."""
    client = app.test_client()
    for i in range(10):
        assert client.get(f"/?wpf_action=add&contact_id=c&access_key=guess{i}").status_code == 403
    answers = {what: client.get(f"/?{query}").status_code for what, query in {
        "wrong key": "wpf_action=add&contact_id=c&access_key=guess",
        "right key": f"wpf_action=add&contact_id=c&access_key={key}",
        "right key, test ping": f"wpf_action=test&access_key={key}",
        "wrong key, bad call": "wpf_action=nonsense&access_key=guess",
        "right key, bad call": f"wpf_action=nonsense&access_key={key}",
    }.items()}
    assert answers == {"wrong key": 429, "right key": 429, "right key, test ping": 429,
                       "wrong key, bad call": 400, "right key, bad call": 400}, "a bad call is refused before any key is read"
