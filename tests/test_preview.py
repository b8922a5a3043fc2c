"""``wpf-bridge preview``: what an action would do to a person, from the same rules as the worker,
changing nothing in WordPress or Ortto; then the worker does what it said. Real WordPress."""
from __future__ import annotations

from conftest import PASSWORD_FIELD, unique_email
from inprocess import person
from test_cli import run_cli

from wpf_bridge.types import DONE, SKIPPED


def users_and_meta(wordpress) -> list[list[str]]:
    """wp_users and wp_usermeta, but the application passwords' last use (WordPress records a sign-in)."""
    return [row for row in wordpress.database_rows() if "_application_passwords" not in row]


def test_preview_says_what_add_and_update_would_do_changes_nothing_and_the_worker_then_does_it(
        env, tmp_path, wordpress, ortto, bridge):
    pid, email = person(ortto, tags=["vip"])
    rows, merges = users_and_meta(wordpress), len(ortto.calls_to("/v1/person/merge"))
    shown = run_cli(env, "preview", email, "--role", "customer", "--notify", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"Ortto person {pid} ({email}, tags ['vip']): no WordPress user"
    assert lines[1].startswith(f"would create a user: username {email!r}")
    assert "  first_name: 'Jane'" in lines and "  roles: [customer]" in lines and "  meta ortto_tags: [vip]" in lines
    assert f"  password: generated, and sent to Ortto's {PASSWORD_FIELD}" in lines and "  welcome email: sent" in lines
    assert lines[-1] == "(a preview: nothing was changed in WordPress or Ortto)"
    assert users_and_meta(wordpress) == rows and len(ortto.calls_to("/v1/person/merge")) == merges

    created = bridge.deliver("add", contact_id=pid, role="customer", send_notification=True)
    assert created.status == DONE
    user = wordpress.user_by_email(email)
    assert user["first_name"] == "Jane" and user["roles"] == ["customer"]

    ortto.people[pid]["str::first"] = "Janet"
    shown = run_cli(env, "preview", pid, "--action", "update", cwd=tmp_path).stdout.splitlines()
    assert f"would update user {user['id']}:" in shown and "  first_name: 'Jane' -> 'Janet'" in shown
    assert not any(line.startswith("  last_name:") for line in shown), "a value the user already holds is no change"
    assert any(line.startswith("  unchanged: ") and "last_name" in line for line in shown)
    assert any(line.startswith(f"and end done: updated user {user['id']}") for line in shown)
    assert bridge.deliver("update", contact_id=pid).status == DONE
    assert wordpress.user_by_email(email)["first_name"] == "Janet", "the worker did what the preview said"


def test_preview_says_why_it_would_refuse(env, tmp_path, wordpress, ortto):
    admin = wordpress.add_user("administrator")
    pid, _ = person(ortto, email=admin["email"])
    shown = run_cli(env, "preview", pid, "--action", "update", cwd=tmp_path).stdout
    assert f"would change nothing and end {SKIPPED}: user {admin['id']} is privileged" in shown
    missing = unique_email("nobody")
    shown = run_cli(env, "preview", missing, cwd=tmp_path).stdout
    assert f"Ortto has no person {missing}: add would fail" in shown
