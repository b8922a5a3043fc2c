"""Linked roles end to end (``[tag_roles]`` in the field map): an Ortto tag applied grants its
role, removed takes it away, other roles stay, a user left with none gets the default role, and
`check` names a linked role that carries power. Real WordPress, the Ortto test server."""
from __future__ import annotations

from conftest import unique_email
from inprocess import Bridge, person

from wpf_bridge.settings import load_settings
from wpf_bridge.types import DONE, SKIPPED


def linked_bridge(env, tmp_path) -> Bridge:
    field_map = tmp_path / "fields.toml"
    field_map.write_text('[fields]\nfirst_name = "str::first"\n\n[tag_roles]\n"Paid" = "customer"\n"Club" = "member"\n')
    return Bridge(load_settings({**env, "WPF_FIELD_MAP": str(field_map), "WPF_ALLOWED_ROLES": "customer,member"}))


def roles_of(wordpress, email: str) -> list[str]:
    [account] = wordpress.accounts([email])[email]
    return sorted(account["roles"])


def test_ortto_tags_grant_and_take_away_their_roles(env, tmp_path, ortto, wordpress):
    bridge = linked_bridge(env, tmp_path)
    contact_id, email = person(ortto, tags=["Paid"])
    assert bridge.deliver("add", contact_id=contact_id).status == DONE
    assert roles_of(wordpress, email) == ["customer", "subscriber"], "the new user: the default role and Paid's"

    ortto.people[contact_id]["tags"] = ["Club"]  # Paid removed, Club applied in Ortto
    tagged = bridge.deliver("update_tags", contact_id=contact_id)
    assert tagged.status == DONE and "role" in tagged.result
    assert roles_of(wordpress, email) == ["member", "subscriber"]

    wordpress.php_eval(f"get_user_by('email', '{email}')->remove_role('subscriber');")
    ortto.people[contact_id]["tags"] = []
    assert bridge.deliver("update_tags", contact_id=contact_id).status == DONE
    assert roles_of(wordpress, email) == ["subscriber"], "left with no role: the default role"
    assert wordpress.user_meta(wordpress.user_by_email(email)["id"], "ortto_tags") == ""


def test_a_tag_never_changes_a_privileged_user(env, tmp_path, ortto, wordpress):
    bridge = linked_bridge(env, tmp_path)
    email = unique_email("author")
    wordpress.rest("POST", "/wp/v2/users", json={"username": email, "email": email, "password": "Author-Pass-12",
                                                 "roles": ["author"]})
    contact_id, _ = person(ortto, email=email, tags=["Paid", "Club"])
    skipped = bridge.deliver("update_tags", contact_id=contact_id)
    assert skipped.status == SKIPPED and "privileged" in skipped.result
    assert roles_of(wordpress, email) == ["author"]


def test_check_names_a_linked_role_that_carries_power(env, tmp_path, ortto, wordpress):
    from test_cli import run_cli

    wordpress.add_role("club_boss", ["read", "list_users"])
    field_map = tmp_path / "fields.toml"
    field_map.write_text('[tag_roles]\n"Boss" = "club_boss"\n')
    result = run_cli({**env, "WPF_FIELD_MAP": str(field_map), "WPF_ALLOWED_ROLES": "customer,club_boss"}, "check",
                     cwd=tmp_path)
    assert result.returncode == 1
    assert ("club_boss (WPF_ALLOWED_ROLES, linked to tag 'Boss'): it carries privileged capabilities (list_users)"
            in result.stdout)
