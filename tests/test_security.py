"""The companion plugin attacked by the site's own users, against the real WordPress.

Every logged-in user may edit their own account and make themselves an application password, so
each route and field the plugin adds is tried by a subscriber, an author and an editor, with every
spelling MariaDB's collation folds into a privileged key. Nothing may change: not a row of
``wp_users`` or ``wp_usermeta``, not a file in the mail folder.
"""
from __future__ import annotations

import io
import json
import threading

import pytest
import requests
from conftest import unique_email
from waiting import wait_for

from wpf_bridge import companion
from wpf_bridge.accounts import POWERS

GRANT_ADMIN = {"administrator": True}
#: Meta keys (and values) that would grant power, a tag, someone's account or a delivery mark.
HOSTILE_META = [
    ("WP_CAPABILITIES", GRANT_ADMIN),
    ("wp_capabilities ", GRANT_ADMIN),
    (" wp_capabilities", GRANT_ADMIN),
    ("wp_capabilities\t", GRANT_ADMIN),
    ("Wp_Capabilities", GRANT_ADMIN),
    ("wp_capabilitieś", GRANT_ADMIN),  # the collation ignores accents too
    ("wp_capabilities", GRANT_ADMIN),
    ("wp_2_capabilities", GRANT_ADMIN),  # another site of a network
    ("wpcapabilities", GRANT_ADMIN),  # a table prefix without "_"
    ("capabilities", GRANT_ADMIN),
    ("wp_user_level", "10"),
    ("WP_USER_LEVEL ", "10"),
    ("wp_2_user_level", "10"),
    ("wpuser_level", "10"),
    ("session_tokens", {"x": {"expiration": 9999999999}}),
    ("_application_passwords", []),
    ("ortto_tags", ["vip", "members-only"]),
    ("ORTTO_TAGS", ["vip"]),
    ("ortto_contact_id", "victims-contact-id"),
    ("wpf_bridge_delivery", "someone-elses-delivery"),
    ("wpf_bridge_notified", None),
    ("company", "harmless on its own, but not self-service"),
]


@pytest.fixture(scope="module")
def site_users(wordpress):
    """A subscriber, an author and an editor (each with an application password), another
    subscriber as the victim, and a subscriber whose application password is named like the bridge's."""
    users = {role: wordpress.add_user(role) for role in ("subscriber", "author", "editor")}
    users["victim"] = wordpress.add_user("subscriber")
    users["named_like_bridge"] = wordpress.add_user("subscriber", app_password_name="wpf-bridge")
    return users


def call(wordpress, user, method, route, **kwargs) -> requests.Response:
    params = {"rest_route": route, **kwargs.pop("params", {})}
    return requests.request(method, wordpress.url + "/", params=params, auth=(user["login"], user["app_password"]),
                            timeout=30, **kwargs)


def attempts(user: dict, victim: dict):
    """(description, method, route, request keyword arguments) for every way to reach the fields."""
    me, own, other = "/wp/v2/users/me", f"/wp/v2/users/{user['id']}", f"/wp/v2/users/{victim['id']}"
    for key, value in HOSTILE_META:
        meta = {"wpf_meta": {key: value}, "first_name": "Pwned"}
        for route in (me, own, other):
            yield f"{key!r} on {route}", "POST", route, {"json": meta}
        yield f"{key!r} creating a user", "POST", "/wp/v2/users", {"json": {
            **meta, "username": "x" + user["login"], "email": unique_email(), "password": "Xx-123456789"}}
    yield "form body", "POST", me, {"data": {"wpf_meta[WP_CAPABILITIES][administrator]": "1", "first_name": "Pwned"}}
    yield "query string", "POST", me, {"params": {"wpf_meta[WP_CAPABILITIES][administrator]": "1"}}
    yield "upper-case route", "POST", "/WP/V2/USERS/ME", {"json": {"wpf_meta": {"WP_CAPABILITIES": GRANT_ADMIN}}}
    yield "PUT", "PUT", me, {"json": {"wpf_meta": {"wp_capabilities": GRANT_ADMIN}}}
    yield "PATCH on another user", "PATCH", other, {"json": {"wpf_meta": {"ortto_tags": ["vip"]}}}
    for route in (me, own, other):
        yield f"welcome email via {route}", "POST", route, {"json": {"wpf_send_notification": True}}
    yield "status", "GET", "/wpf-bridge/v1/status", {}
    judged = sorted(POWERS)  # what the bridge asks about each user found, on every site
    yield "look-up by email", "GET", "/wpf-bridge/v1/users/lookup", {"params": {
        "email": "admin@example.test", "capabilities": ",".join(judged)}}
    yield "look-up by contact id", "GET", "/wpf-bridge/v1/users/lookup", {"params": {
        "contact_id": "victims-contact-id", "capabilities": ",".join(judged)}}
    yield "look-up of many", "POST", "/wpf-bridge/v1/users/lookup", {"json": {"people": [
        {"email": "admin@example.test"}, {"contact_id": "victims-contact-id"}], "capabilities": judged}}
    for key, value in HOSTILE_META:
        meta = {"wpf_meta": {key: value}, "first_name": "Pwned"}
        yield f"batch: {key!r} on self, own id, another user and a new user", "POST", "/wpf-bridge/v1/users/batch", {"json": {
            "writes": [{"user": user["id"], "values": meta}, {"user": victim["id"], "values": meta},
                       {"values": {**meta, "username": "y" + user["login"], "email": unique_email(), "password": "Xx-123456789"}}]}}
    yield "batch: a new administrator", "POST", "/wpf-bridge/v1/users/batch", {"json": {"writes": [{"values": {
        "username": "z" + user["login"], "email": unique_email(), "password": "Xx-123456789", "roles": ["administrator"]}}]}}
    yield "batch: promote self", "POST", "/wpf-bridge/v1/users/batch", {"json": {"writes": [
        {"user": user["id"], "values": {"roles": ["administrator"]}}]}}
    yield "batch: welcome email to self", "POST", "/wpf-bridge/v1/users/batch", {"json": {"writes": [
        {"user": user["id"], "values": {"wpf_send_notification": True}}]}}
    yield "outbox: read the changes", "GET", "/wpf-bridge/v1/outbox", {}
    yield "outbox: acknowledge (delete) changes", "POST", "/wpf-bridge/v1/outbox/ack", {"json": {"ids": list(range(1, 50))}}
    yield "outbox: say what is recorded", "POST", "/wpf-bridge/v1/outbox/watch", {"json": {
        "new": False, "roles": False, "fields": [], "meta": []}}
    yield "outbox: export (record) every user", "POST", "/wpf-bridge/v1/outbox/export", {"json": {}}
    yield "outbox: read users as pushed", "GET", "/wpf-bridge/v1/outbox/users", {"params": {"ids[]": [1, victim["id"]]}}
    yield "outbox: count users (export dry run)", "POST", "/wpf-bridge/v1/outbox/export", {"json": {"dry_run": True}}


@pytest.mark.parametrize("attacker", ["subscriber", "author", "editor", "named_like_bridge"])
def test_ordinary_users_can_use_no_route_or_field_of_the_plugin(wordpress, site_users, attacker):
    user, victim = site_users[attacker], site_users["victim"]
    assert call(wordpress, user, "GET", "/wp/v2/users/me").ok  # signs in (and records the password's first use)
    with wordpress.recording_outbox(fields=["user_email"], meta=["first_name"]):
        wordpress.php_eval(f"wp_update_user(array('ID' => {victim['id']}, 'first_name' => '{attacker}'));")
        rows, mail, outbox = wordpress.database_rows(), wordpress.mail_files(), wordpress.outbox_state()
        assert outbox["rows"] and outbox["watch"], "a change waits in the outbox, to read or delete"

        answered = {what: call(wordpress, user, method, route, **kwargs).status_code
                    for what, method, route, kwargs in attempts(user, victim)}

        assert wordpress.outbox_state() == outbox, "an attempt changed the outbox or what it records"
    let_through = {what: status for what, status in answered.items() if status not in (400, 401, 403)}
    assert let_through == {}
    assert wordpress.database_rows() == rows, "an attempt changed wp_users or wp_usermeta"
    assert wordpress.mail_files() == mail, "an attempt sent an email"
    assert wordpress.php_eval(f"echo json_encode(user_can({user['id']}, 'manage_options'));").strip() == "false"


def test_a_user_manager_may_write_only_ordinary_meta_on_others(wordpress, site_users):
    """A role that may create and edit users (not the bridge's credential) writes ordinary meta on
    someone else, but not the bridge's keys, nothing that grants power, and nothing on itself."""
    wordpress.add_role("user_manager", ["read", "list_users", "edit_users", "create_users"])
    manager, victim = wordpress.add_user("user_manager"), site_users["victim"]
    other = f"/wp/v2/users/{victim['id']}"

    allowed = call(wordpress, manager, "POST", other, json={"wpf_meta": {"company": "Acme"}})
    assert allowed.status_code == 200, allowed.text
    assert wordpress.user_meta(victim["id"], "company") == "Acme"

    rows, mail = wordpress.database_rows(), wordpress.mail_files()
    refused = {
        "bridge key": call(wordpress, manager, "POST", other, json={"wpf_meta": {"ortto_contact_id": "x"}, "first_name": "Pwned"}),
        "privilege key": call(wordpress, manager, "POST", other, json={"wpf_meta": {"WP_CAPABILITIES ": GRANT_ADMIN}}),
        "own account": call(wordpress, manager, "POST", "/wp/v2/users/me", json={"wpf_meta": {"company": "Self"}}),
        "own email": call(wordpress, manager, "POST", "/wp/v2/users/me", json={"wpf_send_notification": True}),
    }
    assert {what: r.status_code for what, r in refused.items()} == {
        "bridge key": 403, "privilege key": 400, "own account": 403, "own email": 403}
    assert wordpress.database_rows() == rows and wordpress.mail_files() == mail


def test_a_user_manager_s_batch_is_checked_write_by_write_as_if_each_came_alone(wordpress, site_users):
    """The batch route only dispatches: each write meets core's permission checks and the plugin's,
    exactly as if sent alone (what core itself lets a user manager do, such as editing any user on
    a single site, the batch lets it do too, and nothing more)."""
    wordpress.add_role("user_manager", ["read", "list_users", "edit_users", "create_users"])
    manager, victim = wordpress.add_user("user_manager"), site_users["victim"]
    assert call(wordpress, manager, "GET", "/wp/v2/users/me").ok  # signs in (and records the password's first use)
    rows, mail = wordpress.database_rows(), wordpress.mail_files()
    writes = {
        "bridge key": {"user": victim["id"], "values": {"wpf_meta": {"ortto_contact_id": "x"}, "first_name": "Pwned"}},
        "privilege key": {"user": victim["id"], "values": {"wpf_meta": {"WP_CAPABILITIES ": GRANT_ADMIN}}},
        "own account": {"user": manager["id"], "values": {"wpf_meta": {"company": "Self"}}},
        "own email": {"user": manager["id"], "values": {"wpf_send_notification": True}},
        "promote self": {"user": manager["id"], "values": {"roles": ["administrator"]}},
        "new administrator": {"values": {"username": unique_email("made"), "email": unique_email(), "password": "Xx-123456789",
                                         "roles": ["administrator"], "wpf_meta": {"company": "Made"}}},
    }
    alone = {what: call(wordpress, manager, "POST", f"/wp/v2/users/{write.get('user', '')}".rstrip("/"),
                        json=write["values"]).status_code for what, write in writes.items()}
    answer = call(wordpress, manager, "POST", "/wpf-bridge/v1/users/batch", json={"writes": list(writes.values())})
    assert answer.status_code == 200, answer.text
    statuses = dict(zip(writes, (r["status"] for r in answer.json()["responses"])))
    assert statuses == alone == {"bridge key": 403, "privilege key": 400, "own account": 403, "own email": 403,
                                 "promote self": 403, "new administrator": 403}
    assert wordpress.database_rows() == rows and wordpress.mail_files() == mail

    allowed = call(wordpress, manager, "POST", "/wpf-bridge/v1/users/batch", json={"writes": [
        {"user": victim["id"], "values": {"wpf_meta": {"company": "Batched"}}}]})
    assert allowed.json()["responses"][0]["status"] == 200
    assert wordpress.user_meta(victim["id"], "company") == "Batched"


def test_batch_routes_refuse_what_they_were_not_made_for(wordpress):
    bridge = {"login": wordpress.admin_user, "app_password": wordpress.app_password}
    too_many = {"writes": [{"values": {"first_name": "x"}, "user": 1}] * 51}
    assert call(wordpress, bridge, "POST", "/wpf-bridge/v1/users/batch", json=too_many).status_code == 400
    assert call(wordpress, bridge, "POST", "/wpf-bridge/v1/users/lookup",
                json={"people": [{"email": "a@example.test"}] * 101}).status_code == 400
    odd = call(wordpress, bridge, "POST", "/wpf-bridge/v1/users/batch", json={"writes": [{"values": {}, "route": "/wp/v2/settings"}]})
    assert odd.status_code == 400, "a write names a user id, never a route"


def test_even_the_bridge_cannot_write_privileged_meta_and_nothing_half_happens(wordpress, site_users):
    bridge = {"login": wordpress.admin_user, "app_password": wordpress.app_password}
    victim = site_users["victim"]
    assert call(wordpress, bridge, "GET", "/wp/v2/users/me").ok  # records the password's first use
    rows = wordpress.database_rows()
    for key, value in HOSTILE_META[:16]:
        answer = call(wordpress, bridge, "POST", f"/wp/v2/users/{victim['id']}",
                      json={"first_name": "Half", "roles": ["customer"], "wpf_meta": {"company": "Half", key: value}})
        assert answer.status_code == 400, (key, answer.text)
    assert wordpress.database_rows() == rows, "a refused request changed core fields or other meta"

    written = call(wordpress, bridge, "POST", f"/wp/v2/users/{victim['id']}", json={"wpf_meta": {"ortto_tags": ["a"]}})
    assert written.status_code == 200 and wordpress.user_meta(victim["id"], "ortto_tags") == ["a"]


def test_look_ups_match_exactly_not_by_collation(wordpress, site_users):
    bridge = {"login": wordpress.admin_user, "app_password": wordpress.app_password}
    victim = site_users["victim"]
    call(wordpress, bridge, "POST", f"/wp/v2/users/{victim['id']}", json={"wpf_meta": {"ortto_contact_id": "abc123def"}})

    def ids(body):
        return [(user or {}).get("id") for user in (body["by_contact_id"], body["by_email"])]

    asked = []

    def found(**params):
        asked.append(params)
        return ids(call(wordpress, bridge, "GET", "/wpf-bridge/v1/users/lookup", params=params).json())

    email = victim["email"]
    assert found(email=email.upper(), contact_id="abc123def") == [victim["id"], victim["id"]]
    lookalike = email.replace("e", "\u00e9", 1)  # subscr\u00e9ber-…: the same row to MariaDB
    assert found(email=lookalike, contact_id="ABC123DEF") == [None, None]
    assert found(email=email + " ", contact_id="abc123def ") == [None, None]
    admin_lookalike = "\u00e0dmin@example.test"  # MariaDB's collation finds admin@example.test
    assert found(email=admin_lookalike) == [None, None]
    # the look-up of many (one query for all) matches exactly the same way
    many = call(wordpress, bridge, "POST", "/wpf-bridge/v1/users/lookup", json={"people": asked}).json()["results"]
    assert [ids(body) for body in many] == [[victim["id"], victim["id"]], [None, None], [None, None], [None, None]]


def test_status_reports_each_roles_capabilities_to_the_bridge_only(wordpress, site_users):
    bridge = {"login": wordpress.admin_user, "app_password": wordpress.app_password}
    status = call(wordpress, bridge, "GET", "/wpf-bridge/v1/status").json()
    assert status["plugin_version"] == companion.version() == "1.6.0" and status["bridge_credential"] is True
    assert "manage_options" in status["roles"]["administrator"] and status["roles"]["customer"] == ["read"]
    assert call(wordpress, site_users["subscriber"], "GET", "/wpf-bridge/v1/status").status_code == 403


def test_on_a_network_ordinary_users_can_use_no_route_or_field_either(network):
    subscriber, victim = network.add_user("subscriber"), network.add_user("subscriber")
    assert call(network, subscriber, "GET", "/wp/v2/users/me").ok
    rows, mail = network.database_rows(), network.mail_files()
    answered = {what: call(network, subscriber, method, route, **kwargs).status_code
                for what, method, route, kwargs in attempts(subscriber, victim)}
    assert {what: status for what, status in answered.items() if status not in (400, 401, 403)} == {}
    assert network.database_rows() == rows and network.mail_files() == mail


def test_an_email_a_user_gives_themselves_is_marked_before_anyone_can_see_it(wordpress):
    """No look-up may find the new email unmarked, not even while WordPress is still writing the
    user's meta after the row (a wide window when the same request carries a long description)."""
    user, target = wordpress.add_user("subscriber"), unique_email("buyer")
    bridge = {"login": wordpress.admin_user, "app_password": wordpress.app_password}
    held = wordpress.hold_next("after-row")

    def change_email() -> None:
        try:
            call(wordpress, user, "POST", "/wp/v2/users/me", json={"email": target})
        except requests.ConnectionError:  # WordPress is killed while it holds the request
            pass

    change = threading.Thread(target=change_email)
    change.start()
    try:
        wait_for(held, 30, "WordPress to hold the email change after writing the users row")
        found = call(wordpress, bridge, "GET", "/wpf-bridge/v1/users/lookup", params={"email": target}).json()["by_email"]
    finally:
        wordpress.kill_server()
        change.join(30)
        wordpress.start_server()
    assert found["id"] == user["id"] and found["email_unconfirmed"] is True


def test_a_value_wordpress_cannot_store_in_the_users_row_saves_nothing(wordpress, site_users):
    """WordPress drops a users-row update it cannot store (a 300-character display name) and
    answers 200 with the rest saved; the plugin rolls the whole write back and says why."""
    bridge = {"login": wordpress.admin_user, "app_password": wordpress.app_password}
    victim = site_users["victim"]
    assert call(wordpress, bridge, "GET", "/wp/v2/users/me").ok
    rows = wordpress.database_rows()
    answer = call(wordpress, bridge, "POST", f"/wp/v2/users/{victim['id']}", json={
        "name": "N" * 300, "email": unique_email("moved"), "first_name": "Half", "wpf_meta": {"company": "Half"}})
    assert answer.status_code == 400 and answer.json()["code"] == "wpf_bridge_not_saved"
    assert "display_name" in answer.json()["message"]
    assert wordpress.database_rows() == rows


# Found by the review of issue 12 (batched path, one-statement ingest).

class _BodyOnTheWay(io.RawIOBase):
    """A request body not all arrived yet: notes that it was read, then ends early."""

    def __init__(self) -> None:
        self.read_at_all = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client rewinds what it is given
        return True

    def seek(self, *_: object) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def readinto(self, _: object) -> int:
        self.read_at_all = True
        return 0


def test_a_blocked_client_cannot_tell_the_right_key_by_how_its_body_is_handled(settings):
    """While blocked, the right key and a wrong one must be handled alike, body included: a body
    read for one and not the other (one waits for a slow body, the other answers at once), or a
    crash on a body only one of them parses, would tell a guesser the key."""
    from wpf_bridge.web import create_app

    client = create_app(settings).test_client()
    for i in range(settings.key_failure_limit):
        assert client.get(f"/?wpf_action=add&contact_id=c&access_key=guess{i}").status_code == 403
    handled = {}
    for which, key in (("wrong", "guess"), ("right", settings.access_keys[0])):
        url = f"/?wpf_action=add&contact_id=c&access_key={key}"
        body = _BodyOnTheWay()
        slow = client.post(url, content_type="application/json", input_stream=body,
                           environ_overrides={"CONTENT_LENGTH": "100"}).status_code
        deep = client.post(url, content_type="application/json", data="[" * 100_000 + "]" * 100_000).status_code
        plain = client.post(url, json={"contact_id": "c"}).status_code
        handled[which] = (slow, body.read_at_all, deep, plain)
    assert handled["wrong"] == handled["right"], handled
    assert handled["right"][2:] == (400, 429), "no crash on a deep body, and the block holds"


class _WordPressAnswering(requests.Session):
    def __init__(self, body: dict):
        super().__init__()
        self.body = body

    def request(self, method, url, **kwargs):
        response = requests.Response()
        response.status_code, response._content = 200, json.dumps(self.body).encode()
        response.headers["Content-Type"] = "application/json"
        return response


def _batched_updates(body: dict, members: int = 2) -> dict:
    from wpf_bridge.clients.wordpress import WordPressClient
    from wpf_bridge.rules import Write
    from wpf_bridge.worker.batch import Batching, Call, send_together

    calls = [Call(Write(10 + rank, {"first_name": "x"})) for rank in range(members)]
    send_together(WordPressClient("http://wp.test", "u", "p", session=_WordPressAnswering(body)), Batching(), calls)
    return {rank: call.error or call.result for rank, call in enumerate(calls)}


def test_a_batch_answer_that_does_not_cover_every_write_fails_the_writes_it_left_out():
    """A write WordPress gave no answer for must not look written (update_user's caller then
    records 'updated user N'), and one odd answer must not fail the writes answered properly."""
    from wpf_bridge.errors import TransientError

    user = {"id": 10, "username": "a", "email": "a@example.test", "roles": ["subscriber"], "capabilities": {"read": True}}
    short = _batched_updates({"responses": [{"status": 200, "body": user}]})
    assert isinstance(short[1], TransientError), short

    odd = _batched_updates({"responses": [{"status": 200, "body": user}, {"status": 500, "body": None}]})
    assert getattr(odd[0], "id", None) == 10 and isinstance(odd[1], TransientError), odd
