"""WordPress -> Ortto, against the real WordPress and the Ortto test server: registrations (by
PHP's wp_insert_user, as a sign-up form or a checkout makes them) become linked Ortto people,
profile edits and roles reach the same person, and nothing the bridge itself made echoes back."""
from __future__ import annotations

import secrets
import time

import pytest
from conftest import unique_email
from inprocess import Bridge, person

from wpf_bridge.settings import load_settings
from wpf_bridge.types import DONE, FAILED, RETRYING, SKIPPED


@pytest.fixture
def pushing(env, tmp_path, wordpress, ortto):
    """A bridge in the test's process that pushes new users, profile edits and linked roles."""
    field_map = tmp_path / "push.toml"
    field_map.write_text('[fields]\nfirst_name = "str::first"\nlast_name = "str::last"\n'
                         '[meta]\ncompany = "str:cm:company"\n[tag_roles]\n"Paid" = "customer"\n')
    pushing_env = {**env, "WPF_FIELD_MAP": str(field_map), "WPF_PUSH_NEW_USERS": "true",
                   "WPF_NEW_USER_TAGS": "Registered,From WordPress", "WPF_PUSH_PROFILE_CHANGES": "true"}
    with wordpress.recording_outbox():  # emptied and off afterwards; the bridge says what it watches
        bridge = Bridge(load_settings(pushing_env))
        bridge.settings_env = pushing_env
        bridge.shared.outbox.watch()
        yield bridge


def sync(bridge) -> list:
    """Pull the outbox and push what it held, as the worker's two threads do; the deliveries made."""
    before = {d.id for d in bridge.store.deliveries.find(limit=1000)}
    while bridge.shared.outbox.pull():
        pass
    while bridge.shared.changes.push_due():
        pass
    return [d for d in bridge.store.deliveries.find(limit=1000) if d.id not in before]


def register(wordpress, email: str, **extra: str) -> int:
    """A user made by PHP's wp_insert_user, not through REST."""
    fields = "".join(f", '{k}' => '{v}'" for k, v in extra.items())
    return int(wordpress.php_eval(
        f"echo wp_insert_user(array('user_login' => 'reg{secrets.token_hex(4)}', 'user_email' => '{email}',"
        f" 'user_pass' => 'Secret-Pass-123'{fields}));").strip())


def people_with(ortto, email: str) -> dict[str, dict]:
    return {pid: p for pid, p in ortto.people.items() if str(p.get("str::email", "")).lower() == email.lower()}


def test_a_registration_becomes_one_linked_ortto_person_with_fields_and_tags_never_a_password(pushing, wordpress, ortto):
    email = unique_email("signup")
    user_id = register(wordpress, email, first_name="Reg", role="customer")
    wordpress.php_eval(f"update_user_meta({user_id}, 'company', 'Acme');")
    done = [d for d in sync(pushing) if d.user_id == user_id]
    assert [d.status for d in done if d.action == "push_new"] == [DONE], [(d.action, d.result) for d in done]
    [(pid, person_)] = people_with(ortto, email).items()
    assert person_["str::first"] == "Reg" and person_["str:cm:company"] == "Acme"
    assert set(person_["tags"]) == {"Registered", "From WordPress", "Paid"}
    assert wordpress.user_meta(user_id, "ortto_contact_id") == pid
    merges = ortto.calls_to("/v1/person/merge")
    assert "Secret-Pass-123" not in repr(merges) and "$P$" not in repr(merges) and "$wp$" not in repr(merges)
    assert sync(pushing) == [], "the link the bridge wrote is not pushed back"


def test_a_registration_with_an_email_ortto_knows_merges_into_that_person_and_keeps_its_values(pushing, wordpress, ortto):
    pid, email = person(ortto, tags=["vip"])
    user_id = register(wordpress, email.upper(), first_name="Impostor")
    sync(pushing)
    assert list(people_with(ortto, email)) == [pid], "no second person"
    assert ortto.people[pid]["str::first"] == "Jane", "an unproven email does not overwrite the person's values"
    assert {"vip", "Registered"} <= set(ortto.people[pid]["tags"])
    assert wordpress.user_meta(user_id, "ortto_contact_id") == pid


def test_a_self_service_profile_edit_reaches_only_the_users_own_person_by_id(pushing, wordpress, ortto):
    member = wordpress.add_user("subscriber")
    sync(pushing)
    pid = wordpress.user_meta(member["id"], "ortto_contact_id")
    assert pid and ortto.people[pid]["str::email"] == member["email"]
    answer = wordpress.rest("POST", "/wp/v2/users/me", auth=(member["login"], member["app_password"]),
                            json={"first_name": "Self", "roles": ["customer"]})
    assert answer.status_code in (400, 401, 403), "a user never gives themselves a role"
    answer = wordpress.rest("POST", "/wp/v2/users/me", auth=(member["login"], member["app_password"]),
                            json={"first_name": "Self"})
    assert answer.status_code == 200, answer.text
    [pushed] = [d for d in sync(pushing) if d.status == DONE]
    assert pushed.action == "push_profile" and pushed.contact_id == pid
    assert ortto.people[pid]["str::first"] == "Self" and "Paid" not in ortto.people[pid]["tags"]


def test_an_email_change_moves_the_person_and_an_unconfirmed_self_set_email_does_not(pushing, wordpress, ortto):
    member = wordpress.add_user("subscriber")
    sync(pushing)
    pid = wordpress.user_meta(member["id"], "ortto_contact_id")
    moved = unique_email("moved")
    admin = wordpress.add_user("administrator")  # the site's administrator, with their own application password
    answer = wordpress.rest("POST", f"/wp/v2/users/{member['id']}", auth=(admin["login"], admin["app_password"]),
                            json={"email": moved})
    assert answer.status_code == 200, answer.text
    sync(pushing)
    assert ortto.people[pid]["str::email"] == moved and list(people_with(ortto, moved)) == [pid]
    mine = unique_email("mine")
    answer = wordpress.rest("POST", "/wp/v2/users/me", auth=(member["login"], member["app_password"]),
                            json={"email": mine})
    assert answer.status_code == 200, answer.text
    [pushed] = [d for d in sync(pushing) if d.action == "push_profile"]
    assert pushed.status == DONE and "email not pushed" in pushed.result
    assert ortto.people[pid]["str::email"] == moved and not people_with(ortto, mine)


def test_a_role_given_and_taken_in_wordpress_applies_and_removes_its_linked_tag(pushing, wordpress, ortto):
    member = wordpress.add_user("subscriber")
    sync(pushing)
    pid = wordpress.user_meta(member["id"], "ortto_contact_id")
    wordpress.php_eval(f"(new WP_User({member['id']}))->add_role('customer');")
    sync(pushing)
    assert "Paid" in ortto.people[pid]["tags"]
    wordpress.php_eval(f"(new WP_User({member['id']}))->remove_role('customer');")
    sync(pushing)
    assert "Paid" not in ortto.people[pid]["tags"] and "Registered" in ortto.people[pid]["tags"]


def test_what_the_bridge_made_from_a_webhook_is_linked_not_pushed_back(pushing, wordpress, ortto):
    pid, email = person(ortto, tags=["Paid"])
    delivery = pushing.deliver("add", contact_id=pid)
    assert delivery.status == DONE, delivery.result
    calls = len(ortto.calls_to("/v1/person/merge"))
    assert [d for d in sync(pushing) if d.status != SKIPPED] == []
    assert len(ortto.calls_to("/v1/person/merge")) == calls, "nothing went back to Ortto"
    assert list(people_with(ortto, email)) == [pid]


def test_ortto_down_retries_the_push_and_a_refused_person_fails_alone(pushing, wordpress, ortto):
    email = unique_email("later")
    register(wordpress, email)
    ortto.fail_next(503, {"error": "down"}, path="/v1/person/merge")
    [waiting] = [d for d in sync(pushing) if d.action == "push_new"]
    assert waiting.status == RETRYING and "503" in waiting.result
    assert not people_with(ortto, email)
    pushing.store.database.query("update deliveries set run_after = 0 where id = :id", {"id": waiting.id})
    pushing.shared.changes.push_due()
    assert pushing.store.deliveries.get(waiting.id).status == DONE
    [pid] = people_with(ortto, email)
    ortto.refuse(pid, "Email is suppressed")
    user = wordpress.user_by_email(email)
    wordpress.php_eval(f"update_user_meta({user['id']}, 'first_name', 'Changed');")
    [refused] = [d for d in sync(pushing) if d.action == "push_profile"]
    assert refused.status == FAILED and "suppressed" in refused.result


def test_check_says_how_far_behind_the_outbox_is_from_wordpress_itself(pushing, env, tmp_path, wordpress, ortto):
    """Read from WordPress, not from what a worker last saw: a stopped worker cannot hide a backlog."""
    from test_cli import run_cli

    on = {**env, "WPF_PUSH_NEW_USERS": "true", "WPF_STALL_MINUTES": "1"}
    result = run_cli(on, "check", cwd=tmp_path)
    assert ("[ok] WordPress -> Ortto (new users): 0 changes waiting in WordPress's outbox, never pulled by a"
            " worker yet") in result.stdout
    sync(pushing)
    assert "0 changes waiting in WordPress's outbox, last pulled" in run_cli(on, "check", cwd=tmp_path).stdout
    for _ in range(3):  # while no worker runs
        register(wordpress, unique_email("backlog"))
    wordpress.php_eval("global $wpdb; $wpdb->query('UPDATE ' . wpf_bridge_outbox_table() ."
                       " ' SET changed_at = DATE_SUB(UTC_TIMESTAMP(), INTERVAL 2 HOUR)');")
    result = run_cli(on, "check", cwd=tmp_path)
    assert result.returncode == 1
    assert "[FAIL] WordPress's outbox holds 3 changes, the oldest made 2 h ago, last pulled" in result.stdout


def test_the_bridges_own_account_is_never_exported_and_a_link_wordpress_refuses_fails_the_push(pushing, wordpress, ortto):
    first = wordpress.rest("POST", "/wpf-bridge/v1/outbox/export", json={"after": 0, "limit": 1, "dry_run": True}).json()
    assert first == {"users": 1, "export": 0, "last": 1, "more": True}, "user 1, the bridge's own, is left out"
    wordpress.php_eval("global $wpdb; $wpdb->insert(wpf_bridge_outbox_table(), array('user_id' => 1, 'kind' => 'export',"
                       " 'changed_at' => gmdate('Y-m-d H:i:s')));")  # as an older plugin might have recorded it
    [pushed] = sync(pushing)
    assert pushed.status == FAILED and "WordPress did not link user 1" in pushed.result
    assert pushing.store.outbound.links([1]) == {}, "no link the store would trust"


def test_check_calls_a_plugin_without_the_outbox_outdated_when_push_is_on(env, tmp_path, ortto):
    from test_cli import run_cli
    from wordpress_site import WordPressSite

    from wpf_bridge import companion

    site = WordPressSite(plugin_source=companion.source().replace(f"= '{companion.version()}'", "= '1.5.0'")).start()
    try:
        result = run_cli({**env, "WORDPRESS_URL": site.url, "WORDPRESS_APP_PASSWORD": site.app_password,
                          "WPF_PUSH_PROFILE_CHANGES": "true"}, "check", cwd=tmp_path)
    finally:
        site.stop()
    assert result.returncode == 1
    assert ("[FAIL] companion plugin 1.5.0 is outdated: it records no change for Ortto, so profile changes do not"
            f" reach Ortto until you install {companion.version()}") in result.stdout


def test_export_pushes_existing_users_once_and_links_them_resumably(env, tmp_path, wordpress, ortto):
    from test_cli import run_cli

    role = "exportee_" + secrets.token_hex(3)
    wordpress.add_role(role, ["read"])
    emails = [unique_email("old") for _ in range(3)]
    ids = [register(wordpress, email, role=role) for email in emails]  # before WordPress -> Ortto was on
    linked_pid, _ = person(ortto, email=emails[0])
    wordpress.php_eval(f"update_user_meta({ids[0]}, 'ortto_contact_id', '{linked_pid}');")  # linked already
    on = {**env, "WPF_PUSH_PROFILE_CHANGES": "true"}
    with wordpress.recording_outbox(new=False):
        result = run_cli(on, "export", "--role", role, "--dry-run", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"3 users with the role '{role}': 2 would be pushed to Ortto (merged by email) and linked" in result.stdout
        assert wordpress.outbox_state()["rows"] == []
        result = run_cli(on, "export", "--role", role, "--no-wait", cwd=tmp_path)
        assert f"recorded 2 of 3 users with the role '{role}' for Ortto (1 are linked already)" in result.stdout
        again = run_cli(on, "export", "--role", role, "--no-wait", cwd=tmp_path)  # interrupted, run again
        assert "recorded 2 of 3" in again.stdout
        bridge = Bridge(load_settings(on))
        pushed = sync(bridge)
        assert sorted(d.status for d in pushed) == [DONE, DONE], [(d.action, d.result) for d in pushed]
        for user_id, email in zip(ids[1:], emails[1:]):
            [pid] = people_with(ortto, email)
            assert wordpress.user_meta(user_id, "ortto_contact_id") == pid
            assert "Registered" not in ortto.people[pid]["tags"], "an existing user is no new registration"
        people = len(ortto.people)
        result = run_cli(on, "export", "--role", role, "--no-wait", cwd=tmp_path)
        assert "recorded 0 of 3" in result.stdout
        assert sync(bridge) == [] and len(ortto.people) == people, "nobody new in Ortto"


def test_export_says_what_to_turn_on_first(env, tmp_path):
    from test_cli import run_cli

    result = run_cli(env, "export", cwd=tmp_path)
    assert result.returncode == 2 and "WordPress -> Ortto is off: set WPF_PUSH_NEW_USERS" in result.stderr


def test_nothing_is_lost_when_the_worker_is_killed_while_users_register_and_ortto_fails(
        start_processes, env, wordpress, ortto):
    """The Procfile's processes: 15 registrations by PHP, the worker kill -9'd after the first five and
    started again after the next five, Ortto refusing the first merges with 503: each user ends
    up one Ortto person, linked, tagged."""
    from waiting import wait_for

    emails = [unique_email(f"burst{n}") for n in range(15)]
    with wordpress.recording_outbox(new=False, roles=False):
        processes = start_processes(WPF_PUSH_NEW_USERS="true", WPF_NEW_USER_TAGS="Registered")
        wait_for(lambda: (wordpress.outbox_state()["watch"] or {}).get("new"), 30, "the worker to watch new users")
        ortto.fail_next(503, {"error": "down"}, times=3, path="/v1/person/merge")
        ids = [register(wordpress, email) for email in emails[:5]]
        processes.kill("worker")
        ids += [register(wordpress, email) for email in emails[5:10]]
        processes.start("worker")
        ids += [register(wordpress, email) for email in emails[10:]]

        def all_linked() -> bool:
            return all(wordpress.user_meta(user_id, "ortto_contact_id") for user_id in ids)

        wait_for(all_linked, 120, "every registration to reach Ortto and be linked")
        assert [row for row in wordpress.outbox_state()["rows"] if int(row["user_id"]) in ids] == [], "acknowledged"
        processes.stop()
    for user_id, email in zip(ids, emails):
        [(pid, pushed)] = people_with(ortto, email).items()
        assert wordpress.user_meta(user_id, "ortto_contact_id") == pid and "Registered" in pushed["tags"]


def test_a_change_of_a_kind_the_bridge_does_not_know_is_acknowledged_not_stuck(pushing, wordpress):
    wordpress.php_eval("global $wpdb; $wpdb->insert(wpf_bridge_outbox_table(), array('user_id' => 1, 'kind' => 'deleted',"
                       " 'changed_at' => gmdate('Y-m-d H:i:s')));")
    assert sync(pushing) == []
    assert [row for row in wordpress.outbox_state()["rows"] if row["kind"] == "deleted"] == []


def test_the_console_and_the_cli_show_each_direction_and_replay_a_failed_push(pushing, env, tmp_path, wordpress, ortto):
    from console_client import CONSOLE_PASSWORD, sign_in
    from test_cli import run_cli

    from wpf_bridge.web import create_app

    pid, email = person(ortto)
    assert pushing.deliver("add", contact_id=pid).status == DONE  # Ortto -> WordPress
    user_id = wordpress.user_by_email(email)["id"]
    ortto.refuse(pid, "Email is suppressed")
    wordpress.php_eval(f"update_user_meta({user_id}, 'first_name', 'Edited');")  # WordPress -> Ortto
    [failed] = [d for d in sync(pushing) if d.action == "push_profile"]
    assert failed.status == FAILED

    client = create_app(load_settings({**pushing.settings_env, "WPF_CONSOLE_PASSWORD": CONSOLE_PASSWORD})).test_client()
    sign_in(client)
    to_ortto = client.get(f"/console/deliveries?direction=ortto&q={email}&partial=1").text
    to_wordpress = client.get(f"/console/deliveries?direction=wordpress&q={email}&partial=1").text
    both = client.get(f"/console/deliveries?q={email}&partial=1").text
    assert "push_profile" in to_ortto and ">add<" not in to_ortto
    assert ">add<" in to_wordpress and "push_profile" not in to_wordpress
    assert both.count('class="delivery"') == 2 and "<td>Ortto</td>" in both and "<td>WordPress</td>" in both
    for who in (pid, email.upper()):  # a person's story, by either identifier, both ways
        story = client.get("/console/person", query_string={"q": who}).text
        assert story.count('class="delivery"') == 2 and "push_profile" in story and ">add<" in story
        assert f"user-edit.php?user_id={user_id}" in story and pid in story
    assert "No delivery for" in client.get("/console/person?q=nobody@example.test").text
    overview = client.get("/console/?partial=1").text
    assert "waiting in WordPress's outbox" in overview and 'id="outbox-behind">0<' in overview

    listed = run_cli(pushing.settings_env, "deliveries", "--to", "ortto", "--email", email, cwd=tmp_path)
    assert "push_profile" in listed.stdout and " add " not in listed.stdout
    ortto.refusing.clear()
    replayed = run_cli(pushing.settings_env, "replay", failed.id, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    pushing.shared.changes.push_due()
    assert pushing.store.deliveries.get(failed.id).status == DONE
    assert ortto.people[pid]["str::first"] == "Edited"


def test_changes_stored_before_push_was_turned_off_end_skipped_not_waiting_for_ever(pushing, env, wordpress, ortto):
    email = unique_email("turnedoff")
    register(wordpress, email)
    pushing.shared.outbox.pull()
    [waiting] = pushing.store.deliveries.find(email=email)
    off = Bridge(load_settings(env))  # WPF_PUSH_* unset, no [tag_roles]
    assert off.shared.outbox is None
    off.shared.changes.push_due()
    ended = off.store.deliveries.get(waiting.id)
    assert ended.status == SKIPPED and "WPF_PUSH_NEW_USERS is off" in ended.result
    assert not people_with(ortto, email)


def test_metrics_count_pushes_by_action_and_show_the_outbox_lag(pushing, wordpress):
    from test_observability import TOKEN, scrape

    from wpf_bridge.web import create_app

    from wpf_bridge.metrics import ATTEMPTS

    client = create_app(load_settings({**pushing.settings_env, "WPF_METRICS_TOKEN": TOKEN})).test_client()
    done = ATTEMPTS.labels("push_new", "done")  # this process's counter (a scrape may read other processes' files)
    before = done._value.get()
    register(wordpress, unique_email("counted"))
    sync(pushing)
    assert done._value.get() - before == 1
    after = scrape(client.get)
    assert after[("wpf_bridge_outbox_behind", ())] == 0
    assert ("wpf_bridge_outbox_oldest_age_seconds", ()) in after


def test_a_name_with_an_ampersand_reaches_ortto_as_written_not_as_wordpress_stores_it(pushing, wordpress, ortto):
    """WordPress keeps names HTML-encoded (its pre_user_* filters: 'O&#039;Brien &amp; Co' for
    'O'Brien & Co'); Ortto holds plain text, so the push decodes what WordPress encoded."""
    email = unique_email("amp")
    user_id = register(wordpress, email, first_name="Tom & Jerry", last_name="Smith <3")
    assert wordpress.php_eval(f"echo get_user_meta({user_id}, 'first_name', true);") == "Tom &amp; Jerry"
    sync(pushing)
    [(_, person_)] = people_with(ortto, email).items()
    assert (person_["str::first"], person_["str::last"]) == ("Tom & Jerry", "Smith <3")
