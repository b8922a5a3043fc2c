"""The companion plugin's outbox as an independent review tried it: each test failed on the outbox's
first version and passes now. A change made after the bridge read a new user's row, a user naming
their password like the bridge's, a user manager who is not the bridge's user, protected meta and
names ending in a newline, a table gone missing, and on a network a change made on another site or
a member removed from the site. Real WordPress, as tests/test_outbox.py runs it."""
from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path

import requests
from conftest import unique_email

WATCH = {"new": True, "roles": True, "fields": ["user_email", "display_name"], "meta": ["first_name", "company"]}


def as_user(site, user: dict, method: str, route: str, base: str | None = None, **kwargs) -> requests.Response:
    params = {"rest_route": route, **kwargs.pop("params", {})}
    return requests.request(method, (base or site.url) + "/", params=params, auth=(user["login"], user["app_password"]),
                            timeout=60, **kwargs)


def watch(site, body: dict = WATCH) -> None:
    answer = site.rest("POST", "/wpf-bridge/v1/outbox/watch", json=body)
    assert answer.status_code == 200, answer.text


def changes(site) -> list[dict]:
    answer = site.rest("GET", "/wpf-bridge/v1/outbox", params={"limit": 500})
    assert answer.status_code == 200, answer.text
    return answer.json()["changes"]


def ack_all(site) -> None:
    ids = [c["id"] for c in changes(site)]
    if ids:
        assert site.rest("POST", "/wpf-bridge/v1/outbox/ack", json={"ids": ids}).status_code == 200


def test_a_change_made_after_the_bridge_acknowledged_a_new_user_s_row_is_not_lost(wordpress):
    """A shop's checkout (or an import, or a batch) creates the user, then writes their name and role
    later in the same PHP request. The 'new' row is committed at user_register; the later changes are
    never recorded because the request is still 'creating' that user. If the bridge pulls and
    acknowledges in between, the name and role never reach Ortto."""
    flags = Path(wordpress.root) / f"review-{secrets.token_hex(4)}"
    with wordpress.recording_outbox():
        watch(wordpress)
        login = "shop" + secrets.token_hex(4)
        code = (
            f"$id = wp_insert_user(array('user_login' => '{login}', 'user_email' => '{login}@example.test',"
            " 'user_pass' => wp_generate_password()));"
            f" file_put_contents('{flags}-created', (string) $id);"
            f" for ($i = 0; $i < 300 && !file_exists('{flags}-pulled'); $i++) {{ usleep(100000); }}"
            " update_user_meta($id, 'first_name', 'Checkout');"  # the billing form's name, saved after the account
            " (new WP_User($id))->add_role('customer');"
        )
        shop = threading.Thread(target=wordpress.php_eval, args=(code,))
        shop.start()
        try:
            for _ in range(300):
                if Path(f"{flags}-created").exists():
                    break
                time.sleep(0.1)
            user_id = int(Path(f"{flags}-created").read_text())
            pulled = {c["kind"]: c for c in changes(wordpress) if c["user_id"] == user_id}  # the bridge pulls...
            new = pulled["new"]
            assert new["user"]["meta"]["first_name"] == "" and new["user"]["roles"] == ["subscriber"]
            ids = [c["id"] for c in pulled.values()]
            assert wordpress.rest("POST", "/wpf-bridge/v1/outbox/ack", json={"ids": ids}).json() == {"removed": len(ids)}
        finally:
            Path(f"{flags}-pulled").touch()  # ...and acknowledges; the checkout goes on
            shop.join(60)
        assert wordpress.user_meta(user_id, "first_name") == "Checkout"  # the checkout did finish its writes
        after = [c for c in changes(wordpress) if c["user_id"] == user_id]
        assert after, "the first name and the customer role written after the bridge's pull are lost"
        assert after[-1]["user"]["meta"]["first_name"] == "Checkout" and "customer" in after[-1]["user"]["roles"]


def test_a_subscriber_whose_password_is_named_wpf_bridge_is_not_the_bridge_their_changes_are_recorded(wordpress):
    """'No echo' is decided by the application password's name alone, which every user chooses for
    their own passwords: a subscriber's own profile change, or another administrator's change made
    with their own password, is never recorded when that password is named wpf-bridge."""
    member = wordpress.add_user("subscriber", app_password_name="wpf-bridge")
    admin2 = wordpress.add_user("administrator", app_password_name="wpf-bridge")
    other = wordpress.add_user("subscriber")
    with wordpress.recording_outbox():
        watch(wordpress)
        ack_all(wordpress)
        assert as_user(wordpress, member, "POST", "/wp/v2/users/me", json={"first_name": "Mine"}).status_code == 200
        assert as_user(wordpress, admin2, "POST", f"/wp/v2/users/{other['id']}", json={"first_name": "Renamed"}).status_code == 200
        assert wordpress.user_meta(member["id"], "first_name") == "Mine" and wordpress.user_meta(other["id"], "first_name") == "Renamed"
        recorded = {c["user_id"]: c["kind"] for c in changes(wordpress)}
        assert {"subscriber's own edit": recorded.get(member["id"]), "another administrator's edit": recorded.get(other["id"])} \
            == {"subscriber's own edit": "profile", "another administrator's edit": "profile"}


RESTRICTED_MANAGERS = r"""<?php
// As shop-manager plugins do: this role manages users, but never an administrator (no edit, no password, no app password).
add_filter('map_meta_cap', function ($caps, $cap, $user_id, $args) {
    $managed = in_array($cap, array('edit_user', 'delete_user', 'promote_user', 'remove_user', 'create_app_password',
                                    'list_app_passwords', 'read_app_password', 'edit_app_password', 'delete_app_passwords'), true);
    if ($managed && !empty($args[0]) && (int) $args[0] !== (int) $user_id
        && in_array('review_user_manager', (array) get_userdata($user_id)->roles, true)
        && user_can((int) $args[0], 'manage_options')) {
        $caps[] = 'do_not_allow';
    }
    return $caps;
}, 10, 4);
"""


def test_only_the_bridge_s_user_may_read_acknowledge_or_stop_the_outbox(wordpress):
    """An account that may manage some users (a 'user manager' role: list, create and edit users, kept
    away from administrators as shop-manager plugins do, so it cannot sign in as the bridge's user)
    names its own application password wpf-bridge: it reads every user's personal data in the outbox
    (the administrators' too), deletes the rows, and switches recording off."""
    mu = wordpress.docroot / "wp-content" / "mu-plugins" / "wpf-review-restricted-managers.php"
    if not mu.exists():
        mu.write_text(RESTRICTED_MANAGERS)
    wordpress.add_role("review_user_manager", ["read", "list_users", "create_users", "edit_users"])
    manager = wordpress.add_user("review_user_manager", app_password_name="wpf-bridge")
    # it may not act as the bridge's user: no application password for the administrator
    assert as_user(wordpress, manager, "POST", "/wp/v2/users/1/application-passwords",
                   json={"name": "wpf-bridge"}).status_code == 403
    with wordpress.recording_outbox():
        watch(wordpress)
        wordpress.php_eval("wp_update_user(array('ID' => 1, 'display_name' => 'Site Owner'));")  # the administrator's own change
        read = as_user(wordpress, manager, "GET", "/wpf-bridge/v1/outbox")
        ids = [c["id"] for c in read.json().get("changes", [])] if read.ok else [1]
        acked = as_user(wordpress, manager, "POST", "/wpf-bridge/v1/outbox/ack", json={"ids": ids})
        stopped = as_user(wordpress, manager, "POST", "/wpf-bridge/v1/outbox/watch",
                          json={"new": False, "roles": False, "fields": [], "meta": []})
        answered = {"read": (read.status_code, read.text[:160]), "ack": (acked.status_code, acked.text),
                    "watch": (stopped.status_code, stopped.text)}
        assert {what: a for what, a in answered.items() if a[0] not in (401, 403)} == {}


def test_the_outbox_never_answers_a_password_hash_whatever_meta_is_watched(wordpress):
    """/outbox/watch accepts any key matching ^[a-z0-9_]{1,64}$, protected ones included
    (_application_passwords, session_tokens, _new_email), and the outbox then answers them."""
    with wordpress.recording_outbox():
        watch(wordpress)
        answer = wordpress.rest("POST", "/wpf-bridge/v1/outbox/watch", json={
            **WATCH, "meta": ["first_name", "_application_passwords", "session_tokens", "_new_email"]})
        user = wordpress.add_user("subscriber")  # an application password: its hash is in _application_passwords
        body = wordpress.rest("GET", "/wpf-bridge/v1/outbox", params={"limit": 500}).text
        hashes = wordpress.php_eval(
            f"echo json_encode(array_column(WP_Application_Passwords::get_user_application_passwords({user['id']}), 'password'));")
        text = json.dumps(json.loads(body))
        leaked = [h for h in json.loads(hashes) if h in text]
        assert answer.status_code == 400 and not leaked, (answer.status_code, answer.text, leaked)


def test_watched_names_with_a_trailing_newline_are_refused(wordpress):
    """WordPress checks a schema 'pattern' with preg_match('#...#u') (no D modifier), so '$' also
    matches before a final newline: 'user_email\\n' passes the fields allowlist, is stored, and email
    changes are then never recorded (WP_User::get('user_email\\n') reads a meta key, always '')."""
    with wordpress.recording_outbox():
        answer = wordpress.rest("POST", "/wpf-bridge/v1/outbox/watch",
                                json={"new": True, "roles": True, "fields": ["user_email\n"], "meta": ["first_name\n"]})
        assert answer.status_code == 400, answer.text


def test_after_watch_answers_ok_a_change_is_recorded_even_if_the_table_went_missing(wordpress):
    """The table is created once per outbox version (an option remembers it), never checked again: if
    the CREATE failed or the table is gone (a restore, a clone without plugin tables), /watch still
    answers 200, every change is then lost, and an administrator's wpf_meta write answers 503."""
    admin2 = wordpress.add_user("administrator")
    other = wordpress.add_user("subscriber")
    with wordpress.recording_outbox():
        wordpress.php_eval("global $wpdb; $wpdb->query('DROP TABLE ' . wpf_bridge_outbox_table());")
        try:
            watch(wordpress)  # the bridge says what it pushes: 200
            write = as_user(wordpress, admin2, "POST", f"/wp/v2/users/{other['id']}",
                            json={"first_name": "Edited", "wpf_meta": {"company": "Acme"}})
            exists = wordpress.php_eval("global $wpdb; echo $wpdb->get_var(\"SHOW TABLES LIKE '\" . wpf_bridge_outbox_table() . \"'\") ? 'yes' : 'no';")
            assert (write.status_code, exists) == (200, "yes"), write.text[:300]
        finally:
            wordpress.php_eval("delete_option('wpf_bridge_outbox_version'); wpf_bridge_outbox_install();")


def test_on_a_network_a_member_s_change_made_on_another_site_is_recorded(network):
    """Users belong to the whole network, but the watch option and the table are per site
    ($wpdb->prefix, get_option): the same member editing their profile on site 2 (or a plugin
    there, or anything in switch_to_blog) records nothing, in any table the bridge reads."""
    path = "club-" + secrets.token_hex(4)
    site = network.add_site(path)
    network.php_eval(f"global $wpdb; $wpdb->update($wpdb->blogs, array('domain' => '127.0.0.1:{network.port}'),"
                     f" array('blog_id' => {site})); clean_blog_cache({site});")
    member = network.add_user("subscriber")  # a member of the bridge's site (1)...
    network.add_to_site(site, member["id"], "subscriber")  # ...and of site 2
    with network.recording_outbox():
        watch(network)
        ack_all(network)
        assert as_user(network, member, "POST", "/wp/v2/users/me", json={"first_name": "Here"}).status_code == 200
        assert [c["kind"] for c in changes(network) if c["user_id"] == member["id"]] == ["profile"]
        ack_all(network)
        new_email = unique_email("moved")
        answer = as_user(network, member, "POST", "/wp/v2/users/me", base=f"{network.url}/{path}",
                         json={"first_name": "There", "email": new_email})
        assert answer.status_code == 200 and answer.json()["id"] == member["id"], answer.text[:300]
        assert [c["kind"] for c in changes(network) if c["user_id"] == member["id"]] == ["profile"], \
            "the member's new name and email, changed on site 2, are nowhere in the bridge's outbox"


def test_on_a_network_removing_a_member_from_the_site_is_a_role_change_recorded(network):
    """wp-admin's Users > Remove on a network (remove_user_from_blog) takes every role the user had on
    the site (WP_User::remove_all_caps deletes the capabilities meta) without set/add/remove_user_role:
    the customer is no longer one, and the outbox never says so."""
    member = network.add_user("customer")
    with network.recording_outbox():
        watch(network)
        ack_all(network)
        network.php_eval(f"remove_user_from_blog({member['id']}, 1);")
        assert network.php_eval(f"echo json_encode((new WP_User({member['id']}))->roles);") == "[]"
        assert [c["kind"] for c in changes(network) if c["user_id"] == member["id"]] == ["roles"]
