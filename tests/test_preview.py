"""``wpf-bridge preview``: what an action would do to a person, from the same rules as the worker,
changing nothing in WordPress or Ortto; then the worker does what it said. Real WordPress."""
from __future__ import annotations

import html
import re
import socket

from conftest import PASSWORD_FIELD, unique_email
from console_client import sign_in, token
from inprocess import person
from test_cli import run_cli

from wpf_bridge.preview import preview
from wpf_bridge.settings import load_settings
from wpf_bridge.store import Store
from wpf_bridge.types import DONE, SKIPPED
from wpf_bridge.worker.operators import OperatorWork


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
    assert lines[0] == f"Ortto person {pid} ({email}, tags [vip]): no WordPress user"
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
    for who, said in (("nope!", "'nope!' is neither an email nor an Ortto contact id"), ("", "'' is neither")):
        refused = run_cli(env, "preview", who, cwd=tmp_path)
        assert refused.returncode == 2 and said in refused.stderr and not refused.stdout
    refused = run_cli(env, "preview", missing, "--role", "Administrator", cwd=tmp_path)
    assert refused.returncode == 2 and "'Administrator' is not a role name" in refused.stderr


def ask_in_console(client, **form) -> str:
    """Ask for a preview through the console's form, as an operator's browser does; its id."""
    sign_in(client)
    answer = client.post("/console/preview", data={**form, "csrf_token": token(client, "/console/preview")})
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"].rsplit("/", 1)[1]


def test_the_console_asks_and_a_worker_answers_with_the_same_lines_changing_nothing(
        console_settings, client, wordpress, ortto):
    """The web process records the question and speaks to neither Ortto nor WordPress; a worker
    answers with ``preview``'s own lines. Text from Ortto is shown as text, never as markup."""
    pid = ortto.add_person({"str::email": unique_email(), "str::first": "<script>alert(1)</script>",
                            "str::last": "Doe"}, ["vip"])
    rows, calls = users_and_meta(wordpress), len(ortto.calls)
    preview_id = ask_in_console(client, q=pid, action="add", role="customer", notify="1")
    waiting = client.get(f"/console/preview/{preview_id}")
    assert waiting.status_code == 200 and "Asking Ortto and WordPress" in waiting.text
    assert "No worker is alive to answer it" in waiting.text, "said at once: no worker has beaten"
    store = Store(console_settings.database_url)
    store.marks.beat("test:1")
    assert "No worker is alive" not in client.get(f"/console/preview/{preview_id}?partial=1").text
    assert len(ortto.calls) == calls, "the web process asked Ortto nothing"

    assert OperatorWork(console_settings, store).run_once()
    expected = preview(console_settings, pid, "add", "customer", True)
    shown = client.get(f"/console/preview/{preview_id}?partial=1").text
    assert "data-done" in shown and "<script>alert" not in shown
    lines = html.unescape(re.search(r"<pre[^>]*>(.*?)</pre>", shown, re.S).group(1)).splitlines()
    assert lines == expected and "  first_name: '' (Ortto's '<script>alert(1)</script>', as WordPress keeps it)" in lines
    assert "  roles: [customer]" in lines and "  welcome email: sent" in lines
    assert users_and_meta(wordpress) == rows and not ortto.calls_to("/v1/person/merge")
    page = client.get("/console/preview").text
    assert f"/console/preview/{preview_id}" in page and pid in page, "listed among the recent previews"
    assert f'href="/console/preview?q={pid}"' in client.get(f"/console/person?q={pid}").text, "one click from a person"


def test_the_console_refuses_a_malformed_question_and_records_nothing(console_settings, client):
    sign_in(client)
    store = Store(console_settings.database_url)
    for form, said in [({"q": "jane@", "action": "add"}, "is not an email address"),
                       ({"q": "0069 abc", "action": "add"}, "neither an email nor an Ortto contact id"),
                       ({"q": "jane@example.com", "action": "delete"}, "Unknown action 'delete'"),
                       ({"q": "jane@example.com", "role": "Administrator!"}, "is not a role name"),
                       ({"q": " "}, "Give an email or an Ortto contact id")]:
        answer = client.post("/console/preview", data={**form, "csrf_token": token(client, "/console/preview")})
        assert answer.status_code == 400 and said in html.unescape(answer.text), form
    assert client.post("/console/preview", data={"q": "jane@example.com"}).status_code == 400, "no CSRF token"
    assert store.previews.recent() == []


def test_a_preview_that_cannot_reach_ortto_says_so_without_a_secret(env, console_settings, client):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    preview_id = ask_in_console(client, q="jane@example.com", action="update")
    down = load_settings({**env, "ORTTO_API_URL": f"http://127.0.0.1:{port}"})
    assert OperatorWork(down, Store(down.database_url)).run_once()
    shown = client.get(f"/console/preview/{preview_id}?partial=1").text
    assert "could not preview: " in shown and "refused" in shown
    assert all(secret not in shown for secret in down.secrets())


TRICKY_NAMES = ["  Grace   Brewster ", "<script>alert(1)</script>Ada", "<b>Bold</b> Name", "Tom <3 you",
                "50%25 off", "Tab\tand\nnew line", "Ünïcødé O'Brien & Co", "a > b &amp; c", "Jo's <3 \"x\"",
                "O&apos;Neil", "x &#39; y &#x027; z", "a&b;c", "&nbsp;Nb&copy;&Copy;", "&#xD800; &#1234567;"]


def test_preview_says_what_wordpress_keeps_of_each_name_and_then_no_change(env, tmp_path, wordpress, ortto, bridge):
    """WordPress cleans names on the way in (sanitize_text_field): the preview shows the value the
    real WordPress then holds, and once it holds it, an update previews no change."""
    import ast

    for name in TRICKY_NAMES:
        pid = ortto.add_person({"str::email": unique_email(), "str::first": name, "str::last": "Doe"}, [])
        lines = run_cli(env, "preview", pid, cwd=tmp_path).stdout.splitlines()
        [said] = [line for line in lines if line.startswith("  first_name: ")]
        predicted = ast.literal_eval(said.removeprefix("  first_name: ").split(" (Ortto's ")[0])
        assert bridge.deliver("add", contact_id=pid).status == DONE
        user = wordpress.user_by_email(ortto.people[pid]["str::email"])
        assert user["first_name"] == predicted, (name, said)
        again = run_cli(env, "preview", pid, "--action", "update", "--notify", cwd=tmp_path).stdout.splitlines()
        assert not any(line.startswith("  first_name:") for line in again), (name, again)
        assert any(line.startswith("  unchanged: ") and "first_name" in line and "meta ortto_contact_id" in line
                   for line in again), again
        assert "  welcome email: not sent (the user exists already)" not in again, "update sends none either way"
    added = run_cli(env, "preview", pid, "--notify", cwd=tmp_path).stdout.splitlines()
    assert "  welcome email: not sent (the user exists already)" in added
