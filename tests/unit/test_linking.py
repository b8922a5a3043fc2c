"""Linked roles (``[tag_roles]``): a tag on the Ortto contact grants its role, a tag gone takes it
away, other roles stay, a user left with none gets the default role, and nothing that carries
power is ever granted through a link."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wpf_bridge.roles import SiteRoles
from wpf_bridge.rules import Create, Outcome, Update
from wpf_bridge.rules.linking import linked_roles
from wpf_bridge.types import SKIPPED

from .facts import FIELDS, NOBODY, POLICY, SITE, by_contact_id, contact, decide, privileged_users, user

LINKS = {"Paid": "customer", "Club": "member", "Gold": "member"}
LINKED = replace(POLICY, field_map=replace(FIELDS, tag_roles=LINKS))


@pytest.mark.parametrize("roles, tags, after", [
    (["subscriber"], ["Paid"], ["subscriber", "customer"]),  # granted, others kept
    (["subscriber", "customer"], [], ["subscriber"]),  # tag gone: role gone
    (["customer"], [], ["subscriber"]),  # left with none: the default role
    (["customer", "member"], ["Gold"], ["member"]),  # one of a role's two tags is enough
    (["member"], ["Paid", "Club", "Gold"], ["member", "customer"]),
    (["subscriber"], ["Unlinked"], ["subscriber"]),
])
def test_tags_grant_and_take_away_their_roles_and_leave_the_others(roles, tags, after):
    assert linked_roles(roles, tags, SITE, LINKED) == (after, "")


def test_the_role_a_webhook_asks_for_stays_even_without_its_tag():
    assert linked_roles(["customer"], [], SITE, LINKED, asked="customer") == (["customer"], "")


def test_a_linked_role_that_carries_power_on_the_site_is_neither_granted_nor_taken_away():
    powerful = SiteRoles({**SITE.capabilities, "member": frozenset({"read", "list_users"})})
    after, note = linked_roles(["subscriber"], ["Club"], powerful, LINKED)
    assert after == ["subscriber"]
    assert note == "linked role 'member' is refused: it carries privileged capabilities (list_users); not granted"
    assert linked_roles(["member"], [], powerful, LINKED)[0] == ["member"]


def test_without_links_roles_are_left_as_they_are():
    assert linked_roles(["customer"], ["Paid"], SITE, POLICY) == (["customer"], "")


def test_update_tags_writes_the_linked_roles_with_the_tags():
    found = user(roles=("subscriber",))
    decision = decide("update_tags", by_contact_id(found), contact(tags=["Paid"]), policy=LINKED)
    assert isinstance(decision, Update)
    assert decision.write.values == {"wpf_meta": {"ortto_tags": ["Paid"]}, "roles": ["subscriber", "customer"]}
    assert decision.outcome.message == "tags of user 7 set to ['Paid']; role subscriber -> subscriber/customer"

    unchanged = decide("update_tags", by_contact_id(user(roles=("customer",))), contact(tags=["Paid"]), policy=LINKED)
    assert isinstance(unchanged, Update) and "roles" not in unchanged.write.values


def test_an_update_applies_the_asked_role_then_the_links():
    found = user(roles=("subscriber", "customer"))
    decision = decide("update", by_contact_id(found), contact(tags=["Club"]), role="subscriber", policy=LINKED)
    assert isinstance(decision, Update)
    assert decision.write.values["roles"] == ["subscriber", "member"]
    assert "role subscriber/customer -> subscriber/member" in decision.outcome.message


def test_a_new_user_gets_the_roles_of_its_tags_beside_the_one_asked():
    decision = decide("add", NOBODY, contact(tags=["Paid", "Gold"]), role="subscriber", policy=LINKED)
    assert isinstance(decision, Create) and decision.values["roles"] == ["subscriber", "customer", "member"]


@given(found=privileged_users(), tags=st.lists(st.sampled_from(sorted(LINKS)), max_size=3),
       action=st.sampled_from(["add", "update", "update_tags"]))
def test_links_never_change_a_privileged_user(found, tags, action):
    decision = decide(action, by_contact_id(found), contact(tags=tags), policy=LINKED)
    assert isinstance(decision, Outcome) and decision.status in (SKIPPED, "failed")


@given(roles=st.lists(st.sampled_from(sorted(SITE.capabilities)), max_size=4, unique=True),
       tags=st.lists(st.sampled_from([*LINKS, "Other"]), max_size=4),
       links=st.dictionaries(st.sampled_from(["Paid", "Club", "Gold", "Boss"]),
                             st.sampled_from(sorted(SITE.capabilities)), max_size=4))
def test_a_link_grants_only_a_role_a_webhook_may_grant_and_never_empties_a_user(roles, tags, links):
    policy = replace(POLICY, field_map=replace(FIELDS, tag_roles=links))
    after, _ = linked_roles(roles, tags, SITE, policy)
    granted = set(after) - set(roles)
    assert all(role in policy.grantable and SITE.refusal(role) is None for role in granted)
    assert after or not (links or roles), "a user is never left without a role by a link"
    assert set(roles) - set(after) <= set(links.values()), "only linked roles are taken away"
