"""What an update changes: the mapped fields and meta, the tags, an allowed role, and the email of
a user the bridge created for this very person, never of one it found by email."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wpf_bridge.rules import Update

from .facts import CONTACT_ID, FIELDS, OTHER_CONTACT_ID, by_contact_id, by_email, contact, decide, user

NOT_FOLLOWED = ("; email not changed: user 7 was not created by the bridge for this Ortto person (only such a user "
                "follows its person's email)")


def test_an_update_writes_the_mapped_fields_meta_tags_and_link_in_one_write():
    decision = decide("update", by_email(user()), contact(tags=["vip", "b"], **{"str:cm:company": "Acme",
                                                                                  "str:cm:username": "taken"}))
    assert isinstance(decision, Update)
    assert decision.write.values == {
        "first_name": "Jane", "last_name": "Doe",
        "wpf_meta": {"company": "Acme", "ortto_contact_id": CONTACT_ID, "ortto_tags": ["vip", "b"]},
    }, "no username or password on an update; the email is the user's already"
    assert decision.outcome.message == "updated user 7"


def test_fields_the_contact_lacks_are_left_alone_and_no_tags_remove_the_meta():
    values = decide("update", by_contact_id(user()), contact(**{"str::last": None})).write.values
    assert "last_name" not in values and "company" not in values["wpf_meta"]
    assert values["wpf_meta"]["ortto_tags"] is None


@pytest.mark.parametrize("found_by_id, created_for, follows", [
    (True, CONTACT_ID, True),
    (True, "", False),  # found by email and linked before, or made by a bridge older than the mark
    (True, OTHER_CONTACT_ID, False),
    (False, CONTACT_ID, False),
])
def test_the_email_follows_the_person_only_on_a_user_the_bridge_created_for_them(found_by_id, created_for, follows):
    found = user(email="old@example.test", contact_id=CONTACT_ID if found_by_id else "", created_for=created_for)
    decision = decide("update", by_contact_id(found) if found_by_id else by_email(found), contact(email="new@example.test"))
    assert decision.write.values.get("email") == ("new@example.test" if follows else None)
    assert decision.outcome.message == "updated user 7" + ("" if follows else NOT_FOLLOWED)


def test_an_email_that_differs_only_in_case_is_no_change_to_report():
    decision = decide("update", by_contact_id(user(contact_id=CONTACT_ID)), contact(email="JANE@Example.test"))
    assert "email" not in decision.write.values and decision.outcome.message == "updated user 7"


def test_update_tags_writes_the_tags_and_nothing_else():
    decision = decide("update_tags", by_contact_id(user()), contact(tags=["a"], **{"str:cm:company": "Acme"}))
    assert decision.write.values == {"wpf_meta": {"ortto_tags": ["a"]}}
    assert decision.outcome.message == "tags of user 7 set to ['a']"


TEXT = st.none() | st.text(max_size=30)


@given(fields=st.fixed_dictionaries({field_id: TEXT for field_id in {*FIELDS.fields.values(), *FIELDS.meta.values()}}),
       found_by_id=st.booleans(), created_for=st.sampled_from(["", CONTACT_ID]))
def test_an_update_writes_only_what_the_field_map_names(fields, found_by_id, created_for):
    found = user(contact_id=CONTACT_ID if found_by_id else "", created_for=created_for)
    the_contact = contact(**fields)
    values = decide("update", by_contact_id(found) if found_by_id else by_email(found), the_contact).write.values
    assert set(values) <= {"first_name", "last_name", "email", "wpf_meta"}, "never a username or password"
    assert set(values["wpf_meta"]) <= {"company", "ortto_contact_id", "ortto_tags"}
    assert values["wpf_meta"]["ortto_contact_id"] == CONTACT_ID
    assert "email" not in values or (found_by_id and created_for == CONTACT_ID)
