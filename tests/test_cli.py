"""``wpf-bridge check`` and ``wpf-bridge wordpress-plugin`` against the real WordPress and Ortto server."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import fresh_database, hold, run_sql, set_columns

from wpf_bridge import companion

ROOT = Path(__file__).resolve().parent.parent


def run_cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the command; its output is decoded as it was written (text mode would turn a ``\r`` into a newline)."""
    result = subprocess.run([sys.executable, "-m", "wpf_bridge", *args], cwd=cwd, env={**os.environ, **env},
                            capture_output=True, timeout=60)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def test_wordpress_plugin_prints_the_companion_plugin_and_php_accepts_it(env, tmp_path):
    result = run_cli(env, "wordpress-plugin", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == (ROOT / "wpf_bridge" / "plugin" / "wpf-bridge.php").read_text()
    target = tmp_path / "wpf-bridge.php"
    target.write_text(result.stdout)
    lint = subprocess.run(["php", "-l", str(target)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_check_passes_on_a_good_set_up_and_prints_webhook_urls(env, tmp_path, ortto):
    result = run_cli(env, "check", "--url", "https://bridge.example.com", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[FAIL]" not in result.stdout
    assert f"[ok] companion plugin {companion.version()}" in result.stdout
    assert "[ok] signed in with the application password named 'wpf-bridge'" in result.stdout
    assert "roles a webhook may grant exist and carry no privileged capability: customer, member, subscriber" in result.stdout
    assert "[note] WPF_TRUSTED_PROXIES=0: wrong keys are counted per client address" in result.stdout
    key = env["WPF_ACCESS_KEY"].split(",")[0]
    assert f"https://bridge.example.com/?wpf_action=add&access_key={key}&role=customer&send_notification=true" in result.stdout
    assert "[note] no worker is alive (last heartbeat: never)" in result.stdout
    assert "all checks passed" in result.stdout


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"ORTTO_API_KEY": "wrong"}, "[FAIL] Ortto at"),
        ({"WORDPRESS_APP_PASSWORD": "abcd efgh ijkl mnop qrst uvwx"}, "refused the application password"),
        ({"WPF_ALLOWED_ROLES": "customer,vip"}, "vip (WPF_ALLOWED_ROLES): it does not exist on the site"),
        ({"ORTTO_PASSWORD_FIELD": "str:cm:wp-pasword"},
         "[FAIL] ORTTO_PASSWORD_FIELD str:cm:wp-pasword is not a custom field in this Ortto account"),
        ({"ORTTO_PASSWORD_FIELD": "str:cm:plan"}, "[FAIL] ORTTO_PASSWORD_FIELD str:cm:plan is a single_select field"),
        ({"WORDPRESS_URL": "https://wordpress.example.com"},
         "[FAIL] WORDPRESS_URL still holds config/env.example's placeholder"),
        ({"WPF_ACCESS_KEY": "change-me-to-a-long-random-key"}, "[FAIL] WPF_ACCESS_KEY still holds"),
        ({"WPF_ALLOWED_ROLES": "customer,editor"}, "editor (WPF_ALLOWED_ROLES): it carries privileged capabilities (unfiltered_html)"),
    ],
)
def test_check_reports_each_problem(env, tmp_path, ortto, change, expected):
    ortto.declare("str:cm:plan", display_type="single_select")
    result = run_cli({**env, **change}, "check", cwd=tmp_path)
    assert result.returncode == 1
    assert expected in result.stdout and re.search(r"^\d+ problems? found$", result.stdout, re.M)


@pytest.mark.parametrize(
    "plugin, expected",
    [
        (None, "companion plugin is not installed"),
        (companion.source().replace(f"= '{companion.version()}'", "= '9.0.0'"),
         f"[FAIL] companion plugin 9.0.0 is newer than this bridge's {companion.version()}: upgrade the bridge"),
    ],
    ids=["missing", "newer"],
)
def test_check_reports_a_missing_or_newer_plugin(env, tmp_path, ortto, plugin, expected):
    from wordpress_site import WordPressSite

    site = WordPressSite(plugin_source=plugin).start()
    try:
        result = run_cli({**env, "WORDPRESS_URL": site.url, "WORDPRESS_APP_PASSWORD": site.app_password}, "check", cwd=tmp_path)
    finally:
        site.stop()
    assert result.returncode == 1
    assert expected in result.stdout


def test_check_reports_missing_capabilities(env, tmp_path, ortto, wordpress):
    name = "editor-" + os.urandom(3).hex()
    user = wordpress.rest("POST", "/wp/v2/users", json={
        "username": name, "email": f"{name}@example.test", "password": "Editor-Pass-1", "roles": ["editor"]}).json()
    password = wordpress.php_eval(
        f"list($p) = WP_Application_Passwords::create_new_application_password({user['id']}, array('name' => 'x')); echo $p;"
    ).strip()
    result = run_cli({**env, "WORDPRESS_USER": name, "WORDPRESS_APP_PASSWORD": password}, "check", cwd=tmp_path)
    assert result.returncode == 1
    assert f"[FAIL] user {name} lacks list_users, create_users, edit_users, promote_users" in result.stdout


def test_check_with_plugin_1_1_0_says_it_is_unsafe_and_goes_on(env, tmp_path, ortto, wordpress):
    from wordpress_site import WordPressSite

    site = WordPressSite(plugin_source=(ROOT / "tests" / "data" / "wpf-bridge-1.1.0.php").read_text()).start()
    try:
        result = run_cli({**env, "WORDPRESS_URL": site.url, "WORDPRESS_APP_PASSWORD": site.app_password}, "check", cwd=tmp_path)
    finally:
        site.stop()
    assert result.returncode == 1 and result.stderr == ""
    assert "[FAIL] companion plugin 1.1.0 is outdated and unsafe" in result.stdout
    assert "[note] the application password's name and the roles are checked once the plugin is current" in result.stdout
    assert "[ok] Ortto API key accepted" in result.stdout and "fix the problems above before you use them" in result.stdout


def test_check_finds_mapped_ortto_fields_missing_from_the_account(env, tmp_path, ortto):
    field_map = tmp_path / "typo.toml"
    field_map.write_text('[fields]\nfirst_name = "str::first"\n[meta]\ncompany = "str:cm:compnay"\n')
    result = run_cli({**env, "WPF_FIELD_MAP": str(field_map)}, "check", cwd=tmp_path)
    assert result.returncode == 1
    assert "[FAIL] mapped Ortto fields missing from the account: str:cm:compnay" in result.stdout
    assert "[ok] Return Password: generated passwords go to Ortto text field str:cm:wp-password" in result.stdout


def test_check_notes_a_login_email_taken_from_a_custom_field(env, tmp_path, ortto):
    field_map = tmp_path / "email.toml"
    field_map.write_text('[fields]\nuser_email = "str:cm:login-email"\n')
    result = run_cli({**env, "WPF_FIELD_MAP": str(field_map)}, "check", cwd=tmp_path)
    assert "[note] user_email comes from str:cm:login-email" in result.stdout


def test_check_requires_the_application_password_named_wpf_bridge(env, tmp_path, ortto, wordpress):
    other = wordpress.php_eval(
        "list($p) = WP_Application_Passwords::create_new_application_password(1, array('name' => 'my-laptop')); echo $p;"
    ).strip()
    result = run_cli({**env, "WORDPRESS_APP_PASSWORD": other}, "check", cwd=tmp_path)
    assert result.returncode == 1
    assert "[FAIL] the application password in WORDPRESS_APP_PASSWORD is not named 'wpf-bridge'" in result.stdout


def test_deliveries_lists_what_became_of_each_with_filters(env, tmp_path, settings):
    import json

    from wpf_bridge.store import Store

    store = Store(settings.database_url)
    skipped = store.ingest.add("update", "abc123", "Jane@Example.test", None, False)[0]
    store.runs.finish(skipped.id, "skipped", "no matching user", call="update", owner=hold(store, skipped.id))
    failed = store.ingest.add("add", "def456", "bob@example.test", None, False)[0]
    store.runs.finish(failed.id, "failed", "Ortto has no contact with id def456", call="add", owner=hold(store, failed.id))
    run_sql(store, "update deliveries set created_at = created_at - 7200 where id = :id", id=failed.id)

    listed = run_cli(env, "deliveries", cwd=tmp_path)
    assert listed.returncode == 0
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["arrived", "delivery", "action", "status", "tries", "contact", "email", "outcome"]
    assert rows[0].split()[2:] == [skipped.id, "update", "skipped", "0", "abc123", "Jane@Example.test",
                                   "no", "matching", "user"]
    assert failed.id in listed.stdout
    for option, shown in ((["--status", "failed"], failed), (["--email", "jane@example.TEST"], skipped),
                          (["--contact", "def456"], failed), (["--since", "1h"], skipped)):
        found = run_cli(env, "deliveries", *option, cwd=tmp_path).stdout
        assert shown.id in found and len(found.splitlines()) == 2, (option, found)
    as_json = json.loads(run_cli(env, "deliveries", "--json", "--status", "failed", cwd=tmp_path).stdout)
    assert [(d["id"], d["email"], d["result"]) for d in as_json] == [(failed.id, "bob@example.test", failed_result(store, failed))]
    assert "secret" not in as_json[0]
    bad = run_cli(env, "deliveries", "--since", "yesterday", cwd=tmp_path)
    assert bad.returncode == 2 and "give an age like 30m" in bad.stderr


def test_a_retrying_delivery_shows_one_live_countdown(env, tmp_path, settings):
    """The outcome was written with the countdown of its time ("retry in 39 s"); the command shows
    the one that is true now, from the delivery's next run."""
    from wpf_bridge.store import Store

    store = Store(settings.database_url)
    waiting = store.ingest.add("add", "abc123", None, None, False)[0]
    set_columns(store, waiting.id, status="retrying", result="WordPress cannot be reached; retry in 39 s",
                run_after=time.time() + 600)
    listed = run_cli(env, "deliveries", cwd=tmp_path).stdout
    assert "WordPress cannot be reached; next try in" in listed and "39 s" not in listed, listed
    shown = run_cli(env, "show", waiting.id, cwd=tmp_path).stdout
    assert re.search(r"^outcome +WordPress cannot be reached$", shown, re.M), shown
    assert re.search(r"^next run +\S+ \S+ \(in (9|10) min\)$", shown, re.M), shown


def failed_result(store, delivery):
    return store.deliveries.get(delivery.id).result


def test_show_prints_a_delivery_whole_and_replay_adds_to_its_history(env, tmp_path, settings, ortto):
    from wpf_bridge.store import Store
    from wpf_bridge.types import FAILED, Run

    store = Store(settings.database_url)
    delivery = store.ingest.add("add", "abc123", "jane@example.test", "customer", True)[0]
    store.runs.retry_later(delivery.id, 30, "attempt 1: WordPress answered HTTP 500 db_error: Deadlock; retry in 30 s",
                      call="add", code="db_error", run=Run(0.3, ["WordPress POST /wpf-bridge/v1/users/batch 500 0.250 s "
                                                                 "(5 together)"]), owner=hold(store, delivery.id))
    store.runs.finish(delivery.id, FAILED, "gave up after 2 attempts: WordPress cannot be reached", call="add",
                 owner=hold(store, delivery.id))
    dry = run_cli(env, "replay", "--email", "JANE@example.test", "--dry-run", cwd=tmp_path).stdout.splitlines()
    assert dry[0] == "a dry run: nothing is replayed" and dry[1].strip().startswith("arrived")
    assert dry[2].startswith("would replay") and dry[1].index("delivery") == dry[2].index(delivery.id), "in columns"
    assert store.deliveries.get(delivery.id).status == FAILED, "a dry run changes nothing"
    assert "replayed 1 delivery" in run_cli(env, "replay", "--email", "jane@example.test", cwd=tmp_path).stdout

    shown = run_cli(env, "show", delivery.id[:8], cwd=tmp_path)

    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert f"delivery        {delivery.id}" in lines and "email           jane@example.test" in lines
    assert "role asked      customer" in lines and "welcome email   asked" in lines
    history = [h for h in lines[lines.index("history") + 1:] if not h.startswith("      ")]
    assert [h.split()[2:4] for h in history] == [["add", "retrying"], ["add", "failed"], ["replay", "queued"]]
    assert lines[lines.index(history[0]) + 1] == "      WordPress POST /wpf-bridge/v1/users/batch 500 0.250 s (5 together)"
    assert history[0].endswith("retry in 30 s [db_error] (next try " + history[0].split("(next try ")[1])
    assert "gave up after 2 attempts" in history[1] and "replayed by an operator" in history[2]
    assert f"{'attempts':15} 0 since the last replay" in lines, "a replay counts the attempts afresh, and says so"
    assert run_cli(env, "show", "nope00", cwd=tmp_path).returncode == 1
    short = run_cli(env, "show", "nope", cwd=tmp_path)
    assert short.returncode == 2 and "give at least 6 characters of the delivery id ('nope' has 4)" in short.stderr
    helped = run_cli(env, "import", "--help", cwd=tmp_path).stdout
    assert "Give every Ortto contact carrying a tag its WordPress user" in helped

def test_every_command_and_option_says_what_it_does(capsys):
    import wpf_bridge.cli

    with pytest.raises(SystemExit):
        wpf_bridge.cli.main(["--help"])
    names = re.search(r"\{([a-z,-]+)\}", capsys.readouterr().out).group(1).split(",")
    bare = []
    for name in names:
        with pytest.raises(SystemExit):
            wpf_bridge.cli.main([name, "--help"])
        text = capsys.readouterr().out
        lines = text.split("options:")[1].splitlines()
        for n, line in enumerate(lines):
            said_here = re.match(r"^  -\S.*?\S  +\S", line)
            said_below = n + 1 < len(lines) and re.match(r"^ {10,}\S", lines[n + 1])
            if line.startswith("  -") and not (said_here or said_below):
                bare.append(f"{name} {line.strip()}")
    assert len(names) > 10 and not bare, bare


def test_a_delivery_that_named_only_a_contact_id_is_found_by_the_contacts_email(env, tmp_path, settings, ortto):
    from inprocess import Bridge, person

    bridge = Bridge(settings)
    contact_id, email = person(ortto)
    delivery = bridge.deliver("update", contact_id=contact_id)
    assert delivery.status == "skipped" and delivery.email == email, "learned from Ortto"
    found = run_cli(env, "deliveries", "--email", email.upper(), cwd=tmp_path).stdout
    assert delivery.id in found


def test_every_command_reads_settings_from_env_file_and_says_where_it_looked(env, tmp_path):
    home = tmp_path / "srv"
    home.mkdir()
    (home / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items() if k != "DATABASE_URL")
                               + "DATABASE_URL=sqlite:///var/bridge.db\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bare_env = dict.fromkeys(env, "")  # nothing from the test's environment

    missing = run_cli(bare_env, "deliveries", cwd=elsewhere)
    assert missing.returncode == 2
    assert f"setting WPF_ACCESS_KEY: is required (settings come from the environment and from {elsewhere / '.env'}, " \
           "which does not exist; give another file with --env-file PATH)" in missing.stderr

    for args in (["--env-file", str(home / ".env"), "migrate"], ["migrate", "--env-file", str(home / ".env")]):
        moved = run_cli(bare_env, *args, cwd=elsewhere)
        assert moved.returncode == 0, moved.stderr
    assert (home / "var" / "bridge.db").is_file(), "relative paths are read from the env file's folder"
    assert not (elsewhere / "var").exists()


def test_wordpress_plugin_install_creates_mu_plugins_on_a_stock_wordpress(tmp_path):
    site = tmp_path / "wordpress"
    (site / "wp-content" / "plugins").mkdir(parents=True)
    result = run_cli({}, "wordpress-plugin", "--install", str(site), cwd=tmp_path)
    target = site / "wp-content" / "mu-plugins" / "wpf-bridge.php"
    assert result.returncode == 0 and str(target) in result.stdout
    assert target.read_text() == companion.source() and target.stat().st_mode & 0o777 == 0o644
    refused = run_cli({}, "wordpress-plugin", "--install", str(tmp_path / "nothing"), cwd=tmp_path)
    assert refused.returncode == 1 and "is not a WordPress folder" in refused.stderr


def test_replay_requeues_failed_deliveries_with_a_fresh_horizon(env, tmp_path, settings, ortto, wordpress):
    from wpf_bridge.store import Store
    from wpf_bridge.types import DONE, FAILED
    from wpf_bridge.worker import Runner, Shared

    store = Store(settings.database_url)
    email = "replay-" + os.urandom(4).hex() + "@example.test"
    contact_id = ortto.add_person({"str::email": email, "str::first": "Re"})
    failed = store.ingest.add("add", contact_id, None, None, False)[0]
    set_columns(store, failed.id, status=FAILED, result="Ortto refused the API key", attempts=3)
    finished = store.ingest.add("update", contact_id, None, None, False)[0]
    set_columns(store, finished.id, status=DONE)

    result = run_cli(env, "replay", "--dry-run", failed.id[:6], cwd=tmp_path)
    assert "would replay 1 delivery" in result.stdout, "an id's first characters, as show takes them"
    result = run_cli(env, "replay", cwd=tmp_path)
    assert result.returncode == 0 and "replayed 1 delivery" in result.stdout
    assert re.search(rf"^replayed .*{failed.id}  add +queued .* replayed$", result.stdout, re.M), "as it waits now"
    again = run_cli(env, "replay", finished.id, "abc", cwd=tmp_path)
    assert again.returncode == 2, "an id too short to find is a mistake in the command"
    assert f"{finished.id}: left alone (it is done, not failed)" in again.stderr
    assert "abc: left alone (give at least 6 characters of the delivery id ('abc' has 3))" in again.stderr

    replayed = store.deliveries.get(failed.id)
    assert (replayed.status, replayed.attempts) == ("queued", 0) and replayed.retry_since > failed.retry_since
    shared = Shared.build(settings, store)
    assert Runner(settings, store, shared).run_next() and shared.pusher.push_due() == 1
    assert store.deliveries.get(failed.id).status == DONE and wordpress.user_by_email(email) is not None


def test_migrate_creates_the_store_for_a_release_step(env, tmp_path, postgres_database):
    from wpf_bridge.redact import url
    from wpf_bridge.store import Store

    from wpf_bridge.store.migrations import LATEST, migrations

    fresh = {**env, "DATABASE_URL": fresh_database(tmp_path / "fresh", postgres_database)}
    for command in ("worker", "web", "deliveries"):
        refused = run_cli(fresh, command, cwd=tmp_path)
        assert (refused.returncode, refused.stderr.strip()) == (2, (
            f"wpf-bridge: the delivery store's schema is at version 0, this wpf-bridge needs {LATEST}:"
            " run `wpf-bridge migrate` (Heroku's release step and the systemd migrate unit run it)")), command

    result = run_cli(fresh, "migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        *(f"applied migration {m.number:04d}_{m.name}" for m in migrations()),
        f"delivery store ready: {url(fresh['DATABASE_URL'])}"]
    again = run_cli(fresh, "migrate", cwd=tmp_path)
    assert again.stdout.strip() == f"delivery store ready, nothing to apply: {url(fresh['DATABASE_URL'])}"
    assert Store(fresh["DATABASE_URL"]).deliveries.counts() == {}
    assert "release: wpf-bridge migrate" in (ROOT / "Procfile").read_text()


def test_make_creates_env_readable_by_its_owner_only(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "env.example").write_text((ROOT / "config" / "env.example").read_text())
    subprocess.run(["make", "-f", str(ROOT / "Makefile"), ".env"], cwd=tmp_path, check=True, capture_output=True)
    env_file = tmp_path / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert "change-me" not in env_file.read_text(), "fresh keys were written"


HOSTILE = "\x1b]0;OWNED\x07\x1b[2J\x9b31m\r[bold]x\x7f"  # retitle, clear, C1 CSI, carriage return, markup, DEL
SHOWN = r"\x1b]0;OWNED\x07\x1b[2J\x9b31m\r[bold]x\x7f"


def raw_controls(text: str) -> list[str]:
    """Control characters that would reach the terminal as they are (the output's own newlines aside)."""
    return [c for c in text if not c.isprintable() and c != "\n"]


def test_text_from_outside_reaches_the_terminal_escaped(env, tmp_path, settings, ortto):
    """An email, contact id, WordPress answer or refusal reason carrying escape sequences is printed
    escaped and visible by every command, never as raw control characters or rich markup."""
    import time

    from wpf_bridge.store import Store
    from wpf_bridge.types import FAILED, Run

    store = Store(settings.database_url)
    delivery = store.ingest.add("add", "c" + HOSTILE, f"x{HOSTILE}@example.test", None, False)[0]
    store.runs.retry_later(delivery.id, 30, f"WordPress answered 500: {HOSTILE}\nforged line", call="add",
                      code=HOSTILE, run=Run(0.1, [f"WordPress POST /{HOSTILE} 500 0.100 s"]), owner=hold(store, delivery.id))
    store.runs.finish(delivery.id, FAILED, f"gave up: {HOSTILE}", call="add", owner=hold(store, delivery.id))
    store.refusals.add({f"access_key {HOSTILE}": (1, time.time())})
    commands = [["deliveries"], ["deliveries", "--json"], ["show", delivery.id], ["show", delivery.id, "--json"],
                ["replay", "--dry-run"], ["refused"], ["check"], ["import", "--tag", "vip"]]
    leaks = {}
    for command in commands:
        ortto.fail_next(400, {"request_id": "r1", "code": 400, "error": f"Ortto says {HOSTILE}"})
        result = run_cli(env, *command, cwd=tmp_path)
        printed = result.stdout + result.stderr
        if raw_controls(printed) or ("--json" not in command and SHOWN not in printed):
            leaks[" ".join(command[:2])] = printed
    assert not leaks, "".join(f"\n{command}: {printed!r}" for command, printed in leaks.items())
    shown = run_cli(env, "show", delivery.id, cwd=tmp_path).stdout
    assert r"500: " + SHOWN + r"\nforged line" in shown, "a newline from outside forges no line"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://127.0.0.1:{closed}", "WordPress cannot be reached: the connection was refused (nothing listens on that port)"),
        ("http://no-such-host.invalid", "WordPress cannot be reached: its host name does not resolve"),
        ("https://127.0.0.1:{wordpress}", "TLS handshake failed: the port does not speak TLS (plain HTTP?); use http://"),
        ("{ortto}", "no WordPress answers at WORDPRESS_URL: its REST API is not found there (HTTP 404)"),
    ],
    ids=["refused", "no such name", "https to plain http", "not wordpress"],
)
def test_check_says_why_wordpress_cannot_be_used(env, tmp_path, ortto, wordpress, url, expected):
    from urllib.parse import urlsplit

    from wordpress_site import free_port

    given = url.format(closed=free_port(), wordpress=urlsplit(wordpress.url).port, ortto=env["ORTTO_API_URL"])
    result = run_cli({**env, "WORDPRESS_URL": given}, "check", cwd=tmp_path)
    assert result.returncode == 1 and expected in result.stdout, result.stdout
    assert "allow its address" not in result.stdout, "no firewall advice for what is not a firewall"


def test_a_wordpress_url_that_is_a_page_of_the_site_is_refused_with_the_address_to_use(env, tmp_path):
    result = run_cli({**env, "WORDPRESS_URL": "https://shop.example.com/wp-admin/"}, "check", cwd=tmp_path)
    assert result.returncode == 2
    assert "WORDPRESS_URL: https://shop.example.com/wp-admin is a page of the site, not its address: use " \
        "https://shop.example.com" in result.stderr


def test_check_says_when_wordpress_url_is_the_bridge_itself_or_a_site_without_wordpress(env, tmp_path, settings):
    """Two easy mistakes, each against a real server: the bridge's own address (its web app, served)
    and a plain web site (Python's http.server over a folder with an index page)."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from werkzeug.serving import make_server

    from wpf_bridge.web import create_app

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<html><title>Our shop</title><body>Welcome</body></html>")
    bridge = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    site = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "site")))
    for server in (bridge, site):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        said = run_cli({**env, "WORDPRESS_URL": f"http://127.0.0.1:{bridge.server_port}"}, "check", cwd=tmp_path).stdout
        assert "no WordPress answers at WORDPRESS_URL: it answered HTTP 400 'wpf_action is required'" in said, said
        assert "wpf-bridge's own answer: WORDPRESS_URL points at the bridge" in said
        said = run_cli({**env, "WORDPRESS_URL": f"http://127.0.0.1:{site.server_port}"}, "check", cwd=tmp_path).stdout
        assert ("WORDPRESS_URL answered HTTP 200 with a page (text/html titled 'Our shop'), not WordPress's REST API: "
                "a site without WordPress there") in said, said
    finally:
        for server in (bridge, site):
            server.shutdown()


def test_a_reader_that_stops_early_gets_no_traceback(env, tmp_path):
    """``wpf-bridge deliveries | head``: the reader goes away; the command ends quietly, as a
    command killed by SIGPIPE does."""
    reading, writing = os.pipe()
    os.close(reading)  # a reader that has already gone: every write fails
    try:
        result = subprocess.run([sys.executable, "-m", "wpf_bridge", "wordpress-plugin"], cwd=tmp_path,
                                env={**os.environ, **env}, stdout=writing, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(writing)
    assert result.returncode == 141 and result.stderr.decode() == ""
