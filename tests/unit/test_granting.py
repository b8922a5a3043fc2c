"""Never grant power: a new user gets an allowed role that carries no power on the site (else the
default role), an update applies only such a role, and no webhook ever grants administrator."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wpf_bridge.accounts import POWERS
from wpf_bridge.roles import SiteRoles
from wpf_bridge.rules import Create, Outcome, Policy, Update
from wpf_bridge.types import FAILED

from .facts import ANY_ROLE, NOBODY, POLICY, SITE, by_contact_id, decide, user

BOSS_ALLOWED = replace(POLICY, allowed_roles=POLICY.allowed_roles | {"shop_boss", "ghost", "administrator"})


@pytest.mark.parametrize("requested, policy, granted, note", [
    ("customer", POLICY, "customer", ""),
    (None, POLICY, "subscriber", ""),
    ("subscriber", POLICY, "subscriber", ""),
    ("editor", POLICY, "subscriber", "; role 'editor' is not allowed (WPF_ALLOWED_ROLES), gave 'subscriber'"),
    ("administrator", BOSS_ALLOWED, "subscriber",
     "; role 'administrator' is refused: administrator is never granted, gave 'subscriber'"),
    ("shop_boss", BOSS_ALLOWED, "subscriber",
     "; role 'shop_boss' is refused: it carries privileged capabilities (edit_users), gave 'subscriber'"),
    ("ghost", BOSS_ALLOWED, "subscriber", "; role 'ghost' is refused: it does not exist on the site, gave 'subscriber'"),
])
def test_a_new_user_gets_the_role_asked_only_if_allowed_and_harmless(requested, policy, granted, note):
    decision = decide("add", NOBODY, role=requested, policy=policy)
    assert isinstance(decision, Create) and decision.values["roles"] == [granted] and decision.note == note


@pytest.mark.parametrize("default, why", [
    ("editor", "it carries privileged capabilities (unfiltered_html)"),
    ("administrator", "administrator is never granted"),
    ("nobody_here", "it does not exist on the site"),
])
def test_a_default_role_that_cannot_be_granted_creates_nobody(default, why):
    policy = replace(POLICY, default_role=default)
    for requested in (None, "customer"):
        assert decide("add", NOBODY, role=requested, policy=policy) == Outcome(
            FAILED, f"WPF_DEFAULT_ROLE {default!r} cannot be granted: {why}")


@pytest.mark.parametrize("requested, values_role, note", [
    ("member", ["member"], "; role subscriber -> member"),
    ("subscriber", ["subscriber"], ""),
    ("editor", None, "; role 'editor' is not allowed (WPF_ALLOWED_ROLES); role unchanged"),
    ("shop_boss", None, "; role 'shop_boss' is refused: it carries privileged capabilities (edit_users); role unchanged"),
    (None, None, ""),
])
def test_an_update_applies_only_an_allowed_harmless_role(requested, values_role, note):
    decision = decide("update", by_contact_id(user()), role=requested, policy=BOSS_ALLOWED)
    assert isinstance(decision, Update) and decision.write.values.get("roles") == values_role
    assert decision.outcome.message == "updated user 7" + note


def test_update_tags_never_changes_a_role():
    decision = decide("update_tags", by_contact_id(user()), role="member")
    assert isinstance(decision, Update) and decision.write.values == {"wpf_meta": {"ortto_tags": None}}


SITES = st.dictionaries(ANY_ROLE, st.frozensets(st.sampled_from(sorted(POWERS)) | st.sampled_from(["read", "edit_posts"])),
                        max_size=8).map(lambda roles: SiteRoles({**roles, "subscriber": frozenset({"read"})}))
POLICIES = st.builds(Policy, st.frozensets(ANY_ROLE, max_size=5), ANY_ROLE)


def harmless(role: str, site: SiteRoles, policy: Policy) -> bool:
    return role in policy.grantable and role != "administrator" and role in site.capabilities and not (
        site.capabilities[role] & POWERS)


@given(site=SITES, policy=POLICIES, requested=st.none() | ANY_ROLE)
def test_no_new_user_ever_gets_a_role_that_is_not_allowed_or_carries_power(site, policy, requested):
    decision = decide("add", NOBODY, role=requested, site=site, policy=policy)
    if isinstance(decision, Outcome):
        assert decision.status == FAILED and not harmless(policy.default_role, site, policy)
    else:
        [role] = decision.values["roles"]
        assert harmless(role, site, policy) and role in (requested, policy.default_role)


@given(site=SITES, policy=POLICIES, requested=st.none() | ANY_ROLE)
def test_no_update_ever_grants_a_role_that_is_not_allowed_or_carries_power(site, policy, requested):
    decision = decide("update", by_contact_id(user(roles=(policy.default_role,))), role=requested, site=site,
                      policy=policy)
    assert isinstance(decision, Update)
    granted = decision.write.values.get("roles")
    assert granted is None or (granted == [requested] and harmless(requested, site, policy))
    assert granted is not None or requested is None or "role unchanged" in decision.outcome.message
