"""A new user: made in one write with its username, role, fields, meta, link, tags and welcome
email; or nobody, with the reason; and how its delivery ends once the user exists."""
from __future__ import annotations

from dataclasses import replace

import pytest

from wpf_bridge.rules import Create, Finish, Outcome, Update, decide_taken
from wpf_bridge.rules.creation import created, created_with_mapped_password, no_free_username
from wpf_bridge.types import DONE, FAILED, PUSHING

from .facts import (CONTACT_ID, NOBODY, POLICY, SITE, by_contact_id, by_email, contact, decide, delivery,
                    user)


def test_a_new_user_is_one_write_with_everything():
    decision = decide("add", NOBODY, contact(tags=["vip"], **{"str:cm:company": "Acme"}), "customer",
                      send_notification=True)
    assert decision == Create(
        values={"first_name": "Jane", "last_name": "Doe", "email": "jane@example.test", "roles": ["customer"],
                "wpf_meta": {"company": "Acme", "ortto_contact_id": CONTACT_ID, "ortto_tags": ["vip"],
                             "wpf_bridge_delivery": "d-1", "wpf_bridge_created_for": CONTACT_ID},
                "wpf_send_notification": True},
        usernames=decision.usernames, password=None, note="")
    assert decision.usernames[:2] == ("jane@example.test", "jane@example.test1") and len(decision.usernames) == 100


def test_a_mapped_username_and_password_are_used_as_given():
    decision = decide("add", NOBODY, contact(**{"str:cm:username": "Zoë.O'Brien", "str:cm:password": "Pass-123"}))
    assert decision.usernames[0] == "zoe.obrien" and decision.password == "Pass-123"
    assert "username" not in decision.values and "password" not in decision.values


@pytest.mark.parametrize("send, setting, sent", [(False, False, False), (True, False, True), (False, True, True)])
def test_the_welcome_email_goes_when_the_webhook_or_the_settings_ask(send, setting, sent):
    decision = decide("add", NOBODY, send_notification=send, policy=replace(POLICY, welcome_email=setting))
    assert decision.values["wpf_send_notification"] is sent


@pytest.mark.parametrize("email, why", [
    (None, f"Ortto contact {CONTACT_ID} has no email; WordPress needs one"),
    ("x" * 90 + "@example.test", f"Ortto contact {CONTACT_ID} has an email longer than WordPress's 100 characters"),
])
def test_a_contact_wordpress_cannot_store_creates_nobody(email, why):
    assert decide("add", NOBODY, contact(email=email)) == Outcome(FAILED, why)


def test_how_a_created_user_s_delivery_ends():
    jane = user(username="jane")
    assert created(jane, "", POLICY, password_kept=True) == Outcome(PUSHING, "created user 7 (jane)", 7)
    assert created(jane, "; why", replace(POLICY, returns_password=False), True) == Outcome(
        DONE, "created user 7 (jane); why", 7)
    assert created(jane, "", POLICY, password_kept=False) == Outcome(
        DONE, "created user 7 (jane); its generated password was erased when the delivery failed, so none goes to "
              'Ortto: the user can set one with WordPress\'s "Lost your password?"', 7)
    assert created_with_mapped_password(jane, "jane2", "") == Outcome(
        DONE, "created user 7 (jane2) with the mapped password", 7)
    assert no_free_username(contact(), decide("add", NOBODY)) == Outcome(
        FAILED, "no free username for jane@example.test after 'jane@example.test99'")


def test_an_email_taken_since_the_look_up_is_the_user_to_update_or_this_delivery_s_own():
    def taken(found):
        return decide_taken(delivery(), contact(), found, SITE, POLICY)

    assert taken(NOBODY) == Outcome(
        FAILED, "WordPress reports jane@example.test as taken, but no user has exactly that email")
    ours = user(contact_id=CONTACT_ID, delivery_id="d-1")
    assert taken(by_contact_id(ours)) == Finish(ours, None)
    assert isinstance(taken(by_email(user())), Update)
    assert taken(by_email(user(roles=("author",)))).message.endswith("is privileged (role author, which a webhook "
                                                                     "may not grant); not changed")
