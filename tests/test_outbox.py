"""The companion plugin's outbox (WordPress -> Ortto): what it records, as the change happens and in
its transaction; what it never records (the bridge's own changes, anything before the bridge asked,
a password); how it stays bounded; and its routes for the bridge's credential. Real WordPress."""
from __future__ import annotations

import secrets

import pytest
import requests
from conftest import unique_email

WATCH = {"new": True, "roles": True, "fields": ["user_email", "display_name"], "meta": ["first_name", "company"]}


def route(wordpress, method: str, path: str, **kwargs):
    answer = wordpress.rest(method, f"/wpf-bridge/v1/outbox{path}", **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def outbox(wordpress):
    """The outbox recording what WATCH names, as the bridge asks it to; emptied and off afterwards."""
    with wordpress.recording_outbox():
        assert route(wordpress, "POST", "/watch", json=WATCH) == {"user": 1, **WATCH}
        yield wordpress


def changes(wordpress) -> list[dict]:
    return route(wordpress, "GET", "", params={"limit": 500})["changes"]


def register(wordpress, **extra: str) -> int:
    """A user made by PHP's wp_insert_user (a sign-up form, a shop's checkout), not through REST."""
    login = "reg" + secrets.token_hex(4)
    fields = "".join(f", '{k}' => '{v}'" for k, v in extra.items())
    return int(wordpress.php_eval(
        f"echo wp_insert_user(array('user_login' => '{login}', 'user_email' => '{login}@example.test',"
        f" 'user_pass' => 'Secret-Pass-123'{fields}));").strip())


def test_nothing_is_recorded_before_the_bridge_says_what_it_pushes(wordpress):
    user_id = register(wordpress)
    state = wordpress.outbox_state()
    assert state["watch"] is False and user_id not in [int(row["user_id"]) for row in state["rows"] or []]
    assert wordpress.rest("GET", "/wpf-bridge/v1/outbox").status_code == 403, "no bridge's user named yet"


def test_a_registration_by_php_is_recorded_with_the_user_as_the_bridge_pushes_it_never_a_password(outbox):
    user_id = register(outbox, first_name="Reg", role="subscriber")
    recorded = {c["kind"]: c for c in changes(outbox) if c["user_id"] == user_id}
    assert "new" in recorded
    user = recorded["new"]["user"]
    assert user["roles"] == ["subscriber"] and user["meta"]["first_name"] == "Reg"
    assert set(user["fields"]) == {"user_email", "display_name"} and set(user["meta"]) == {
        "first_name", "company", "ortto_contact_id", "wpf_bridge_created_for", "wpf_bridge_unconfirmed_email"}
    body = outbox.rest("GET", "/wpf-bridge/v1/outbox").text
    assert "Secret-Pass-123" not in body and "$P$" not in body and "user_pass" not in body


def test_the_bridge_s_own_writes_are_not_recorded(outbox):
    """A user the bridge creates from a webhook, and fields it writes, came from Ortto: no echo."""
    email = unique_email("bridge")
    made = outbox.rest("POST", "/wp/v2/users", json={"username": email, "email": email, "password": "Xx-123456789-long",
                                                    "roles": ["customer"], "first_name": "From", "wpf_meta": {"company": "Ortto"}})
    assert made.status_code == 201, made.text
    assert [c for c in changes(outbox) if c["user_id"] == made.json()["id"]] == []


def test_a_self_service_edit_of_a_watched_field_is_recorded_and_others_are_not(outbox):
    member = outbox.add_user("subscriber")
    route(outbox, "POST", "/ack", json={"ids": [c["id"] for c in changes(outbox)]})  # its registration, pushed

    def own(values: dict) -> None:  # with the member's own credentials, as from their profile page
        answer = requests.post(outbox.url + "/", params={"rest_route": "/wp/v2/users/me"}, json=values, timeout=30,
                               auth=(member["login"], member["app_password"]))
        assert answer.status_code == 200, answer.text

    def profile_changes() -> list[dict]:
        return [c for c in changes(outbox) if c["user_id"] == member["id"] and c["kind"] == "profile"]

    own({"description": "not watched"})
    assert profile_changes() == []
    own({"first_name": "Mine"})
    [change] = profile_changes()
    assert change["user"]["meta"]["first_name"] == "Mine"


def test_a_user_s_changes_coalesce_and_an_old_id_acknowledges_nothing(outbox):
    """One row per user and kind: the outbox stays bounded however long the bridge is away; a change
    made after the bridge read a row replaces it with a new id, so acknowledging the old id loses nothing."""
    user_id = register(outbox)
    for n in range(5):
        outbox.php_eval(f"wp_update_user(array('ID' => {user_id}, 'first_name' => 'n{n}', 'display_name' => 'd{n}'));")
    [first] = [c for c in changes(outbox) if c["user_id"] == user_id and c["kind"] == "profile"]
    outbox.php_eval(f"update_user_meta({user_id}, 'company', 'Later');")
    [later] = [c for c in changes(outbox) if c["user_id"] == user_id and c["kind"] == "profile"]
    assert later["id"] > first["id"] and later["user"]["meta"]["company"] == "Later"

    assert route(outbox, "POST", "/ack", json={"ids": [first["id"]]}) == {"removed": 0}
    assert route(outbox, "POST", "/ack", json={"ids": [later["id"]]}) == {"removed": 1}
    assert "profile" not in [c["kind"] for c in changes(outbox) if c["user_id"] == user_id]


def test_a_role_given_in_wordpress_is_recorded(outbox):
    user_id = register(outbox)
    route(outbox, "POST", "/ack", json={"ids": [c["id"] for c in changes(outbox)]})
    outbox.php_eval(f"(new WP_User({user_id}))->add_role('customer');")
    [change] = changes(outbox)
    assert change["kind"] == "roles" and sorted(change["user"]["roles"]) == ["customer", "subscriber"]


def test_a_change_rolled_back_leaves_no_row(outbox):
    """The row is written on WordPress's own connection: inside the change's transaction."""
    before = outbox.outbox_state()["rows"]
    outbox.php_eval("global $wpdb; $wpdb->query('START TRANSACTION'); wp_insert_user(array('user_login' => 'gone"
                    + secrets.token_hex(3) + "', 'user_email' => 'gone@example.test', 'user_pass' => 'x')); "
                    "$wpdb->query('ROLLBACK');")
    assert outbox.outbox_state()["rows"] == before


def test_the_routes_refuse_what_they_were_not_made_for(outbox):
    for method, path, kwargs in [("GET", "", {"params": {"limit": 501}}), ("POST", "/ack", {"json": {"ids": ["1; drop"]}}),
                                 ("POST", "/watch", {"json": {**WATCH, "fields": ["user_pass"]}}),
                                 ("POST", "/watch", {"json": {**WATCH, "meta": ["Bad Key"]}}),
                                 ("POST", "/watch", {"json": {**WATCH, "meta": ["_application_passwords"]}}),
                                 ("POST", "/watch", {"json": {**WATCH, "fields": ["user_email\n"]}})]:
        assert outbox.rest(method, f"/wpf-bridge/v1/outbox{path}", **kwargs).status_code == 400, (path, kwargs)


def test_a_registration_costs_one_row_its_meta_and_role_travel_with_it_later_changes_their_own(outbox):
    user_id = register(outbox, first_name="Reg", role="subscriber")
    kinds = lambda: sorted(row["kind"] for row in outbox.outbox_state()["rows"] if int(row["user_id"]) == user_id)  # noqa: E731
    assert kinds() == ["new"]
    outbox.php_eval(f"update_user_meta({user_id}, 'company', 'Acme'); (new WP_User({user_id}))->add_role('customer');")
    assert kinds() == ["new", "profile", "roles"]
