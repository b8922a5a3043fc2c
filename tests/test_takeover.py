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

import pytest
from conftest import unique_email
from inprocess import Bridge, person

from wpf_bridge.settings import load_settings
from wpf_bridge.store import DONE, SKIPPED


def left_alone(site, user: dict) -> None:
    """Not renamed, not re-roled, not linked, no tags: exactly as before the webhook."""
    after = site.rest("GET", f"/wp/v2/users/{user['id']}", params={"context": "edit"}).json()
    assert after["first_name"] != "Mallory" and after["roles"] == [user["role"]]
    assert site.user_meta(user["id"], "ortto_contact_id") == "" and site.user_meta(user["id"], "ortto_tags") == ""


@pytest.mark.parametrize("action", ["add", "update", "update_tags"])
@pytest.mark.parametrize("role", ["author", "contributor", "reader_plus"])
def test_a_user_with_a_role_no_webhook_may_grant_is_left_alone(bridge, ortto, wordpress, action, role):
    """An author was renamed and made a customer; any role outside WPF_ALLOWED_ROLES and the
    default role (a custom one with nothing but ``read`` too) now keeps its user out of reach."""
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

    for action in ("add", "update", "update_tags"):
        done = network_bridge.deliver(action, contact_id=contact_id, role="customer")
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
