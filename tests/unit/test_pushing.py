"""WordPress -> Ortto: what a change to a WordPress user pushes to its Ortto person (rules.pushing)."""
from __future__ import annotations

from dataclasses import replace

from wpf_bridge.accounts import Change, Profile
from wpf_bridge.fieldmap import FieldMap, to_ortto
from wpf_bridge.rules.pushing import Push, Quiet, decide_push

from .facts import CONTACT_ID, POLICY

MAP = FieldMap(
    fields={"first_name": "str::first", "display_name": "str:cm:shown", "user_email": "str::email",
            "user_login": "str:cm:username", "user_pass": "str:cm:password"},
    meta={"company": "str:cm:company", "billing_city": "geo::city", "member_since": "dtz:cm:since"},
    tag_roles={"Paid": "customer", "Club": "member"},
)
PUSHING = replace(POLICY, field_map=MAP, push_new_users=True, push_profile_changes=True, new_user_tags=("Registered",))


def change(kind: str = "new", roles=("subscriber",), email: str = "jane@example.test", **meta: str) -> Change:
    profile = Profile(7, email, tuple(roles), {"user_email": email, "display_name": "Jane D"},
                      {"first_name": "Jane", "company": "Acme", "billing_city": "", "user_pass": "x", **meta})
    return Change(12, kind, 7, "2026-12-04 10:00:00Z", profile)


def test_a_new_user_is_merged_by_email_with_the_map_in_reverse_the_new_user_tags_and_its_roles_tags():
    push = decide_push(change(roles=("customer",)), "", PUSHING)
    assert push == Push(7, None, "jane@example.test",
                        {"str::first": "Jane", "str:cm:shown": "Jane D", "str:cm:company": "Acme"},
                        ("Registered", "Paid"))


def test_no_password_and_no_login_ever_goes_to_ortto():
    push = decide_push(change(), "", PUSHING)
    assert isinstance(push, Push)
    assert "str:cm:password" not in push.fields and "str:cm:username" not in push.fields


def test_a_new_user_is_not_pushed_when_the_setting_is_off_when_the_bridge_made_it_or_when_already_linked():
    assert isinstance(decide_push(change(), "", replace(PUSHING, push_new_users=False)), Quiet)
    made = decide_push(change(wpf_bridge_created_for=CONTACT_ID, ortto_contact_id=CONTACT_ID), "", PUSHING)
    assert isinstance(made, Quiet) and "created by the bridge" in made.reason
    assert "already linked" in decide_push(change(), CONTACT_ID, PUSHING).reason


def test_a_profile_change_of_a_linked_user_goes_by_person_id_with_its_email_and_no_tags():
    push = decide_push(change("profile", roles=("customer",)), CONTACT_ID, PUSHING)
    assert push == Push(7, CONTACT_ID, "jane@example.test", {
        "str::first": "Jane", "str:cm:shown": "Jane D", "str:cm:company": "Acme", "str::email": "jane@example.test"})


def test_a_profile_change_of_an_unlinked_user_or_with_the_setting_off_pushes_nothing():
    assert "not linked" in decide_push(change("profile"), "", PUSHING).reason
    assert isinstance(decide_push(change("profile"), CONTACT_ID, replace(PUSHING, push_profile_changes=False)), Quiet)


def test_an_email_the_user_set_and_never_confirmed_is_not_pushed():
    push = decide_push(change("profile", wpf_bridge_unconfirmed_email="JANE@example.test"), CONTACT_ID, PUSHING)
    assert isinstance(push, Push) and "str::email" not in push.fields and push.email == ""
    assert "not confirmed" in push.describe()


def test_roles_apply_the_linked_tags_of_roles_held_and_remove_the_others():
    push = decide_push(change("roles", roles=("member", "subscriber")), CONTACT_ID, PUSHING)
    assert push == Push(7, CONTACT_ID, "jane@example.test", {}, ("Club",), ("Paid",))
    assert isinstance(decide_push(change("roles"), CONTACT_ID, replace(PUSHING, field_map=FieldMap())), Quiet)


def test_a_deleted_user_or_one_without_email_pushes_nothing():
    gone = Change(12, "profile", 7, "2026-12-04 10:00:00Z", None)
    assert "no longer exists" in decide_push(gone, CONTACT_ID, PUSHING).reason
    assert "no email" in decide_push(change(email=""), "", PUSHING).reason


def test_values_become_what_the_ortto_field_type_holds():
    assert to_ortto("bol:cm:vip", "yes") is True and to_ortto("bol:cm:vip", "0") is False
    assert to_ortto("geo::city", "Sydney") == {"name": "Sydney"}
    assert to_ortto("int:cm:visits", "12") == 12 and to_ortto("int:cm:visits", "twelve") is None
    assert to_ortto("dtz:cm:since", "2024-03-05") == {"year": 2024, "month": 3, "day": 5, "timezone": "UTC"}
    assert to_ortto("str:cm:x", "  ") is None and to_ortto("str:cm:x", "a" * 300) == "a" * 255


def test_the_outbox_watches_the_mapped_columns_and_meta_never_the_password():
    assert MAP.watched() == (["user_email", "display_name"], ["first_name", "company", "billing_city", "member_since"])


def test_an_exported_user_is_merged_by_email_like_a_new_one_without_the_new_users_tags_whatever_the_setting():
    push = decide_push(change("export", roles=("customer",)), "", replace(PUSHING, push_new_users=False))
    assert isinstance(push, Push) and push.person_id is None and push.tags == ("Paid",)
    assert "already linked" in decide_push(change("export"), CONTACT_ID, PUSHING).reason


def test_a_new_or_exported_user_whose_email_is_self_set_and_unconfirmed_is_neither_pushed_nor_linked():
    for kind in ("new", "export"):
        quiet = decide_push(change(kind, wpf_bridge_unconfirmed_email="jane@example.test"), "", PUSHING)
        assert isinstance(quiet, Quiet) and "not confirmed" in quiet.reason
