"""Who counts as the same person: the user holding the contact's id first, then the one with its
email; and the user this very delivery created, which is finished, not updated."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wpf_bridge.accounts import Lookup
from wpf_bridge.rules import NO_USER, Create, Finish, Update, Write
from wpf_bridge.rules.people import Match, same_person

from .facts import ACTIONS, CONTACT_ID, NOBODY, by_contact_id, by_email, decide, user

USERS = st.none() | st.builds(user, st.integers(1, 10**6))


@given(holder=USERS, with_email=USERS)
def test_the_user_holding_the_contact_id_wins_over_the_one_with_the_email(holder, with_email):
    match = same_person(Lookup(holder, with_email))
    if holder:
        assert match == Match(holder, True)
    elif with_email:
        assert match == Match(with_email, False)
    else:
        assert match is None


def test_a_person_whose_email_moved_keeps_their_account():
    moved = user(7, email="old@example.test", contact_id=CONTACT_ID)
    decision = decide("update", Lookup(moved, user(8, email="jane@example.test")))
    assert isinstance(decision, Update) and decision.write.user_id == 7


@pytest.mark.parametrize("action", ["update", "update_tags"])
def test_nobody_found_is_no_matching_user_and_nothing_is_created(action):
    assert decide(action, NOBODY, role="customer") == NO_USER


def test_nobody_found_is_a_new_user_for_add():
    assert isinstance(decide("add", NOBODY), Create)


@pytest.mark.parametrize("notified, send, owed", [(False, True, True), (True, True, False), (False, False, False)])
def test_the_user_this_delivery_created_is_finished_with_the_email_it_still_owes(notified, send, owed):
    ours = user(contact_id=CONTACT_ID, delivery_id="d-1", created_for=CONTACT_ID, notified=notified)
    decision = decide("add", by_contact_id(ours), role="customer", send_notification=send)
    assert decision == Finish(ours, Write(7, {"wpf_send_notification": True}) if owed else None)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_user_made_by_another_delivery_or_found_by_email_is_not_finished_but_updated(action):
    for found in (by_contact_id(user(contact_id=CONTACT_ID, delivery_id="d-0")),
                  by_email(user(delivery_id="d-1"))):
        assert isinstance(decide(action, found), Update)


def test_the_user_this_delivery_created_is_finished_even_if_it_gained_power_since():
    """Left as it is (issue 19, part 3): only the welcome email it owes is sent, nothing changes."""
    promoted = user(roles=("editor",), contact_id=CONTACT_ID, delivery_id="d-1")
    decision = decide("add", by_contact_id(promoted), send_notification=True)
    assert decision == Finish(promoted, Write(7, {"wpf_send_notification": True}))
