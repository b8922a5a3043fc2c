"""Never touch the privileged, never relink, never link an unconfirmed email: whatever the action,
the role asked or the contact, such a user gets no write, only an outcome that says why."""
from __future__ import annotations

from dataclasses import replace

import pytest
from .facts import (ACTIONS, CONTACT_ID, OTHER_CONTACT_ID, POLICY, by_contact_id, by_email, contact, decide,
                   harmless_sites, privileged_users, user)
from hypothesis import given
from hypothesis import strategies as st

from wpf_bridge.accounts import Standing
from wpf_bridge.rules import Outcome, Update
from wpf_bridge.types import FAILED, SKIPPED

TOO_OLD = ("user 7 not changed: the companion plugin on WordPress is older than 1.4.0, so it cannot say what power "
           "the user holds on other sites of a network or through other plugins; update it (`wpf-bridge "
           "wordpress-plugin --install /path/to/wordpress`) and replay")


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("found, why", [
    (user(roles=("author",)), "role author, which a webhook may not grant"),
    (user(roles=("customer", "editor")), "role editor, which a webhook may not grant"),
    (user(sites=(Standing(1, ("subscriber",), ()), Standing(3, ("administrator",), ()))),
     "role administrator on site 3, which a webhook may not grant"),
    (user(sites=(Standing(1, ("subscriber",), ("edit_users",)),)), "can edit_users"),
    (user(sites=(Standing(1, ("subscriber",), ()), Standing(4, (), ("list_users", "manage_options")))),
     "can list_users, manage_options on site 4"),
    (user(super_admin=True), "a super admin of the network"),
    (user(sites=(Standing(1, ("subscriber",), ()), Standing(3, ("subscriber",), (), ("shop.php", "theme:x")))),
     "belongs to site 3, whose own plugins or theme (shop.php, theme:x) are not loaded on the bridge's site and could "
     "grant power there"),
])
def test_a_privileged_user_is_skipped_with_the_reason(action, found, why):
    for lookup in (by_contact_id(found), by_email(found)):
        assert decide(action, lookup, role="customer") == Outcome(SKIPPED, f"user 7 is privileged ({why}); not changed", 7)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_plugin_too_old_to_say_what_power_a_user_holds_fails_the_delivery(action):
    assert decide(action, by_contact_id(user(sites=None))) == Outcome(FAILED, TOO_OLD, 7)


@given(action=st.sampled_from(ACTIONS), found=privileged_users(), by_id=st.booleans(),
       role=st.none() | st.sampled_from(["customer", "administrator", "editor", "subscriber"]),
       notify=st.booleans(), email=st.sampled_from(["jane@example.test", "other@example.test"]))
def test_a_user_who_holds_anything_a_webhook_may_not_grant_is_never_written(action, found, by_id, role, notify, email):
    lookup = by_contact_id(found) if by_id else by_email(found)
    decision = decide(action, lookup, contact(email=email), role, send_notification=notify)
    assert isinstance(decision, Outcome) and decision.status in (SKIPPED, FAILED) and decision.user_id == found.id
    assert "not changed" in decision.message


@given(action=st.sampled_from(ACTIONS), sites=harmless_sites(), by_id=st.booleans())
def test_a_user_with_grantable_roles_only_on_every_site_is_updated(action, sites, by_id):
    found = user(sites=sites, contact_id=CONTACT_ID if by_id else "")
    decision = decide(action, by_contact_id(found) if by_id else by_email(found), role="member")
    assert isinstance(decision, Update) and decision.write.user_id == found.id


@pytest.mark.parametrize("action", ACTIONS)
def test_a_user_found_by_email_who_belongs_to_another_contact_is_not_relinked(action):
    decision = decide(action, by_email(user(contact_id=OTHER_CONTACT_ID)), role="customer")
    assert decision == Outcome(
        FAILED, f"user 7 has this email but is linked to Ortto contact {OTHER_CONTACT_ID}, not {CONTACT_ID}; "
        "not relinked or changed", 7)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("linked", ["", CONTACT_ID])
def test_a_user_found_by_email_with_no_contact_or_this_one_is_linked(action, linked):
    decision = decide(action, by_email(user(contact_id=linked)))
    assert isinstance(decision, Update) and decision.write.user_id == 7
    if action != "update_tags":
        assert decision.write.values["wpf_meta"]["ortto_contact_id"] == CONTACT_ID


@pytest.mark.parametrize("action", ACTIONS)
def test_a_user_who_gave_itself_the_email_unconfirmed_is_not_linked(action):
    decision = decide(action, by_email(user(email_unconfirmed=True)), role="customer")
    assert decision == Outcome(FAILED, "user 7 gave itself this email without confirming it (WordPress REST allows "
                                       "that); not linked or changed", 7)


def test_an_unconfirmed_email_does_not_matter_once_the_user_holds_the_contact_id():
    """Linked before (by a trusted email), the user is this person's whatever its email says now."""
    decision = decide("update", by_contact_id(user(contact_id=CONTACT_ID, email_unconfirmed=True)))
    assert isinstance(decision, Update)


def test_a_role_the_settings_allow_is_no_longer_out_of_reach():
    author = by_contact_id(user(roles=("author",)))
    assert isinstance(decide("update", author), Outcome)
    allowed = replace(POLICY, allowed_roles=POLICY.allowed_roles | {"author"})
    assert isinstance(decide("update", author, policy=allowed), Update)
