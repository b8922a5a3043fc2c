"""No account changes hands through Ortto data, against the real WordPress (single site and network).

Anyone can type anyone's email into an Ortto form, so the person behind a webhook may be an
attacker. A webhook changes only users whose every role, on every site, is one a webhook may
grant and who hold no power by any means (roles, another site of the network, a plugin's run-time
grant): everyone else is left alone, not even linked. And only a user the bridge created for an
Ortto person follows that person's email: moving the email of a user found by email would hand
its password resets to whoever changed the person in Ortto.
"""
from __future__ import annotations

import dataclasses
import secrets

import pytest
import requests
from conftest import unique_email
from inprocess import Bridge, person

from wpf_bridge.settings import load_settings
from wpf_bridge.types import DONE, SKIPPED

#: A plugin as a network may run it on one site only (activated there, not network-wide): it
#: lets the users named in that site's option "wpf_review_managers" manage that site's users.
SITE_PLUGIN = """<?php
/* Plugin Name: wpf-review site managers */
add_filter('user_has_cap', function ($allcaps, $caps, $args, $user) {
    if (in_array((int) $user->ID, array_map('intval', (array) get_option('wpf_review_managers', array())), true)) {
        $allcaps['list_users'] = $allcaps['edit_users'] = $allcaps['promote_users'] = true;
    }
    return $allcaps;
}, 10, 4);
"""

#: A network-wide (must-use) plugin that makes the user named in a site's "wpf_review_owner"
#: option that site's owner: manage_options there, without making them a member of the site.
OWNER_MU_PLUGIN = """<?php
add_filter('user_has_cap', function ($allcaps, $caps, $args, $user) {
    if ((int) get_option('wpf_review_owner', 0) === (int) $user->ID && $user->ID) {
        $allcaps['manage_options'] = $allcaps['list_users'] = true;
    }
    return $allcaps;
}, 10, 4);
"""


#: Counts the site switches of a request and reports them in a header, to measure a look-up's work.
SWITCH_COUNTER_MU_PLUGIN = """<?php
$GLOBALS['wpf_review_switches'] = 0;
add_action('switch_blog', function () { $GLOBALS['wpf_review_switches']++; });
add_filter('rest_post_dispatch', function ($response) {
    $response->header('X-Review-Switches', (string) $GLOBALS['wpf_review_switches']);
    return $response;
});
"""


def as_user(site_url: str, user: dict, route: str, **params) -> requests.Response:
    return requests.get(site_url + "/", params={"rest_route": route, **params}, auth=(user["login"], user["app_password"]),
                        timeout=30)


def reachable_site(network, path: str) -> int:
    """A new site of the network that also answers HTTP at network.url/path/ (wp_insert_site drops
    the port's colon from the domain, so add_site's sites are reachable through switch_to_blog only)."""
    site = network.add_site(path)
    network.php_eval(f"global $wpdb; $wpdb->update($wpdb->blogs, array('domain' => '127.0.0.1:{network.port}'),"
                     f" array('blog_id' => {site})); clean_blog_cache({site});")
    return site


def left_alone(site, user: dict) -> None:
    """Not renamed, not re-roled, not linked, no tags: exactly as before the webhook."""
    after = site.rest("GET", f"/wp/v2/users/{user['id']}", params={"context": "edit"}).json()
    assert after["first_name"] != "Mallory" and after["roles"] == [user["role"]]
    assert site.user_meta(user["id"], "ortto_contact_id") == "" and site.user_meta(user["id"], "ortto_tags") == ""


@pytest.mark.parametrize("role, action", [("author", "add"), ("contributor", "update"), ("reader_plus", "update_tags")])
def test_a_user_with_a_role_no_webhook_may_grant_is_left_alone(bridge, ortto, wordpress, action, role):
    """An author was renamed and made a customer; any role outside WPF_ALLOWED_ROLES and the
    default role (a custom one with nothing but ``read`` too) now keeps its user out of reach.
    Each role with one action here; every action with every kind of power: tests/unit/test_guards.py."""
    wordpress.add_role("reader_plus", ["read"])
    user = {**wordpress.add_user(role), "role": role}
    contact_id, _ = person(ortto, email=user["email"], tags=["vip"], **{"str::first": "Mallory"})

    done = bridge.deliver(action, contact_id=contact_id, role="customer")

    assert done.status == SKIPPED and done.user_id == user["id"]
    assert done.result == f"user {user['id']} is privileged (role {role}, which a webhook may not grant); not changed"
    left_alone(wordpress, user)


def test_a_user_granted_power_by_a_plugin_at_run_time_is_left_alone(bridge, ortto, wordpress):
    """A membership plugin's ``user_has_cap`` filter gives a subscriber ``edit_users``: it is in no
    role and in no capability list, but WordPress's ``user_can()`` says yes, and so does the plugin."""
    user = {**wordpress.add_user("subscriber"), "role": "subscriber"}
    wordpress.grant_at_run_time(user["id"], ["edit_users"])
    contact_id, _ = person(ortto, email=user["email"], **{"str::first": "Mallory"})

    found = bridge.runner.wordpress.lookup(contact_id, user["email"]).by_email
    done = bridge.deliver("update", contact_id=contact_id, role="customer")

    assert "edit_users" not in found.capabilities and [s.powers for s in found.sites] == [("edit_users",)]
    assert done.status == SKIPPED and "privileged (can edit_users)" in done.result
    left_alone(wordpress, user)


@pytest.fixture
def network_bridge(network, settings):
    return Bridge(dataclasses.replace(settings, wordpress_url=network.url, wordpress_app_password=network.app_password))


def test_an_administrator_of_another_site_of_the_network_is_left_alone(network, network_bridge, ortto):
    """A subscriber of the bridge's site who runs site 2 of the network was judged by site 1 alone."""
    site = network.add_site("shop-" + unique_email("x")[5:15])
    user = {**network.add_user("subscriber"), "role": "subscriber"}
    network.add_to_site(site, user["id"], "administrator")
    contact_id, _ = person(ortto, email=user["email"], tags=["vip"], **{"str::first": "Mallory"})

    done = network_bridge.deliver("add", contact_id=contact_id, role="customer")
    assert done.status == SKIPPED and f"(role administrator on site {site}, which a webhook may not grant)" in done.result
    left_alone(network, user)


def test_a_subscriber_of_two_sites_of_the_network_is_still_updated(network, network_bridge, ortto):
    """The rule leaves alone who holds power, not everyone on a network."""
    site = network.add_site("club-" + unique_email("x")[5:15])
    user = network.add_user("subscriber")
    network.add_to_site(site, user["id"], "subscriber")
    contact_id, _ = person(ortto, email=user["email"], **{"str::first": "Renamed"})

    done = network_bridge.deliver("update", contact_id=contact_id, role="customer")

    assert done.status == DONE and done.user_id == user["id"], done.result
    assert network.user_meta(user["id"], "first_name") == "Renamed"


def test_a_super_admin_counts_as_privileged_whatever_their_role(network, network_bridge, ortto):
    """A super admin holds every capability without any appearing in their roles."""
    boss = {**network.add_user("subscriber"), "role": "subscriber"}
    network.php_eval(f"grant_super_admin({boss['id']});")
    contact_id, _ = person(ortto, email=boss["email"], tags=["vip"], **{"str::first": "Mallory"})

    done = network_bridge.deliver("update", contact_id=contact_id, role="customer")

    assert done.status == SKIPPED and "privileged (a super admin of the network)" in done.result
    left_alone(network, boss)


@pytest.fixture
def email_bridge(env, tmp_path):
    """A bridge whose field map writes the Ortto person's email to the user's."""
    field_map = tmp_path / "email-map.toml"
    field_map.write_text('[fields]\nfirst_name = "str::first"\nuser_email = "str::email"\n')
    return Bridge(load_settings({**env, "WPF_FIELD_MAP": str(field_map)}))


def test_a_user_found_by_email_keeps_its_email_whatever_its_person_says_later(email_bridge, ortto, wordpress):
    """The first webhook links the subscriber found by email; when the person's email then moves
    (Ortto's API or an import), the user found by contact id keeps its email, and says why."""
    victim = unique_email("victim")
    created = wordpress.rest("POST", "/wp/v2/users", json={"username": victim, "email": victim, "password": "Victim-Pass-1"}).json()
    contact_id, _ = person(ortto, email=victim)
    linked = email_bridge.deliver("update", contact_id=contact_id)
    assert linked.status == DONE and wordpress.user_meta(created["id"], "ortto_contact_id") == contact_id
    ortto.people[contact_id]["str::email"] = "attacker@evil.example"

    moved = email_bridge.deliver("update", contact_id=contact_id)

    assert moved.status == DONE and moved.user_id == created["id"]
    assert (f"email not changed: user {created['id']} was not created by the bridge for this Ortto person "
            "(only such a user follows its person's email)") in moved.result
    assert wordpress.user_by_email(victim)["id"] == created["id"]
    assert wordpress.user_by_email("attacker@evil.example") is None


def test_a_user_the_bridge_created_follows_its_persons_email(email_bridge, ortto, wordpress):
    contact_id, email = person(ortto)
    created = email_bridge.deliver("add", contact_id=contact_id)
    assert wordpress.user_meta(created.user_id, "wpf_bridge_created_for") == contact_id
    moved = unique_email("moved")
    ortto.people[contact_id]["str::email"] = moved

    done = email_bridge.deliver("update", contact_id=contact_id)

    assert done.status == DONE and "email not changed" not in done.result
    assert wordpress.user_by_email(moved)["id"] == created.user_id and wordpress.user_by_email(email) is None


def test_power_a_plugin_active_on_another_site_only_grants_there_counts(network, network_bridge, ortto):
    """The look-up judges site 2 from a request to site 1, where only site 1's plugins are loaded:
    a plugin active on site 2 alone (not network-wide) that lets a user manage users there cannot
    be asked, so a user who belongs to a site running code the bridge's site does not is left alone."""
    plugins = network.docroot / "wp-content" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "wpf-review-site-managers.php").write_text(SITE_PLUGIN)
    path = "managed-" + secrets.token_hex(4)
    site = reachable_site(network, path)
    user = network.add_user("subscriber")
    network.add_to_site(site, user["id"], "subscriber")
    network.php_eval(f"switch_to_blog({site}); update_option('active_plugins', array('wpf-review-site-managers.php'));"
                     f" update_option('wpf_review_managers', array({user['id']})); restore_current_blog();")
    # WordPress itself, on site 2, lets the user list (and edit) users; on site 1 it does not
    assert as_user(f"{network.url}/{path}", user, "/wp/v2/users", context="edit").status_code == 200
    assert as_user(network.url, user, "/wp/v2/users", context="edit").status_code == 403
    contact_id, _ = person(ortto, email=user["email"], tags=["vip"], **{"str::first": "Mallory"})

    done = network_bridge.deliver("update", contact_id=contact_id, role="customer")

    assert done.status == SKIPPED and f"privileged (belongs to site {site}, whose own plugins or theme " \
        "(wpf-review-site-managers.php) are not loaded on the bridge's site" in done.result, done.result
    assert network.user_meta(user["id"], "ortto_contact_id") == "" and network.user_meta(user["id"], "first_name") != "Mallory"


def test_power_on_a_site_the_user_is_not_a_member_of_counts(network, network_bridge, ortto):
    """Every site of a network (up to 50 sites) is judged, not only those the user belongs to: a
    network-wide plugin may make a user the owner (manage_options) of a site without making them
    a member of it."""
    mu = network.docroot / "wp-content" / "mu-plugins" / "wpf-review-site-owner.php"
    if not mu.exists():
        mu.write_text(OWNER_MU_PLUGIN)
    path = "owned-" + secrets.token_hex(4)
    site = network.add_site(path)
    user = network.add_user("subscriber")
    network.php_eval(f"switch_to_blog({site}); update_option('wpf_review_owner', {user['id']}); restore_current_blog();")
    assert network.php_eval(f"echo is_user_member_of_blog({user['id']}, {site}) ? 'member' : 'not a member';") == "not a member"
    assert network.php_eval(f"switch_to_blog({site}); echo user_can({user['id']}, 'manage_options') ? 'yes' : 'no';") == "yes"
    contact_id, _ = person(ortto, email=user["email"], tags=["vip"], **{"str::first": "Mallory"})

    done = network_bridge.deliver("update", contact_id=contact_id, role="customer")

    assert done.status == SKIPPED and f"privileged (can list_users, manage_options on site {site})" in done.result, \
        done.result
    assert network.user_meta(user["id"], "ortto_contact_id") == "" and network.user_meta(user["id"], "first_name") != "Mallory"


def test_a_look_up_judges_each_user_it_finds_once(network):
    """Each user is judged with a site switch and 35 user_can() per site: a linked user, found both
    by contact id and by email, is judged once (0.36 ms per user and site was measured)."""
    mu = network.docroot / "wp-content" / "mu-plugins" / "wpf-review-switch-counter.php"
    if not mu.exists():
        mu.write_text(SWITCH_COUNTER_MU_PLUGIN)
    sites = [network.add_site("member-" + secrets.token_hex(4)) for _ in range(3)]
    user = network.add_user("subscriber")
    for site in sites:
        network.add_to_site(site, user["id"], "subscriber")
    network.php_eval(f"update_user_meta({user['id']}, 'ortto_contact_id', 'c-{user['id']}');")

    def look_up(contact_id: str) -> tuple[dict, int]:
        answer = network.rest("POST", "/wpf-bridge/v1/users/lookup", json={
            "people": [{"contact_id": contact_id, "email": user["email"]}], "capabilities": ["manage_options"]})
        return answer.json()["results"][0], int(answer.headers["X-Review-Switches"])

    by_email_only, once = look_up("")
    found, switches = look_up(f"c-{user['id']}")

    assert found["by_contact_id"]["id"] == found["by_email"]["id"] == by_email_only["by_email"]["id"] == user["id"]
    assert len(found["by_email"]["sites"]) == 4 and once >= 2 * len(sites)
    assert switches == once, f"{switches} site switches for one user found twice, {once} for it found once"
