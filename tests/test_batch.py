"""Deliveries applied together: their WordPress requests batched through the companion plugin's
batch routes, with every rule and guarantee of a delivery applied alone. Real WordPress, the
Ortto test server, the worker's ``Runner`` in-process."""
from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

from conftest import PASSWORD_FIELD, unique_email
from inprocess import Bridge, person

from wpf_bridge.types import DONE, FAILED, SKIPPED

OLD_PLUGIN = Path(__file__).parent / "data" / "wpf-bridge-1.2.0.php"


def wordpress_requests(wordpress) -> list[str]:
    """The requests php -S has logged so far: (method, rest_route), in order."""
    text = (wordpress.root / "php-server.log").read_text(errors="replace")
    return re.findall(r"\]: ((?:GET|POST) /\S*)", text)


def run_group(bridge, deliveries) -> list:
    """One claim of the runner, which takes them all as one group; then the password push."""
    assert bridge.runner.run_next()
    assert {bridge.store.deliveries.get(d.id).status for d in deliveries}.isdisjoint({"queued", "running"}), "one group ran them all"
    bridge.shared.pusher.push_due()
    return [bridge.store.deliveries.get(d.id) for d in deliveries]


def test_a_group_gets_every_rule_of_a_delivery_alone_in_a_few_requests(bridge, ortto, wordpress):
    newcomers = [person(ortto, tags=["vip"]) for _ in range(6)]
    existing_id, existing_email = person(ortto, **{"str::first": "Known"})
    wordpress.rest("POST", "/wp/v2/users", json={"username": unique_email("known"), "email": existing_email,
                                                 "password": "Known-Pass-12"}).raise_for_status()
    squatted_id, squatted_email = person(ortto)  # someone else already has her email as their username
    wordpress.rest("POST", "/wp/v2/users", json={"username": squatted_email, "email": unique_email("squatter"),
                                                 "password": "Squat-Pass-12"}).raise_for_status()
    admin_id = ortto.add_person({"str::email": "admin@example.test", "str::first": "Mallory"})
    calls = [("add", cid, True, "customer") for cid, _ in newcomers[:2]] + \
            [("add", cid, False, "administrator") for cid, _ in newcomers[2:]] + \
            [("add", existing_id, True, None), ("add", squatted_id, False, None), ("update", admin_id, False, "customer"),
             ("add", "0" * 24, False, None)]
    deliveries = [bridge.store.ingest.add(action, cid, None, role, notify)[0] for action, cid, notify, role in calls]
    before = len(wordpress_requests(wordpress))

    ended = run_group(bridge, deliveries)

    requests = wordpress_requests(wordpress)[before:]
    statuses = [d.status for d in ended]
    assert statuses == [DONE] * 8 + [SKIPPED, FAILED], [d.result for d in ended]
    assert "role 'administrator' is not allowed" in ended[2].result
    assert "updated user" in ended[6].result and "privileged" in ended[8].result and "Ortto has no contact" in ended[9].result
    emails = [email for _, email in newcomers] + [squatted_email]
    accounts = wordpress.accounts(emails + [existing_email])
    assert all(len(accounts[email]) == 1 for email in emails), "one user each"
    assert [accounts[email][0]["roles"] for email in emails[:3]] == [["customer"], ["customer"], ["subscriber"]]
    assert accounts[squatted_email][0]["login"] != squatted_email, "the next username was tried"
    assert accounts[existing_email][0]["first_name"] == "Known"
    assert wordpress.user_meta(accounts[emails[0]][0]["id"], "ortto_tags") == ["vip"]
    mail = wordpress.mail_count()
    assert [mail[email] for email in emails] == [1, 1, 0, 0, 0, 0, 0] and mail[existing_email] == 0
    logins = wordpress.logins({email: ortto.people[cid][PASSWORD_FIELD] for cid, email in newcomers + [(squatted_id, squatted_email)]})
    assert all(logins.values()), logins
    # one status (the site's roles), one look-up and one write for the group, one write for the squatted username
    batched = [r for r in requests if "users%2Fbatch" in r or "users/batch" in r]
    assert len(requests) <= 5 and len(batched) == 1, requests
    run = bridge.store.history.of(deliveries[0].id)[-2]
    assert re.search(r"WordPress POST /wpf-bridge/v1/users/lookup 200 \S+ s \(9 together\)", run.calls), run.calls
    assert re.search(r"WordPress POST /wpf-bridge/v1/users/batch 200 \S+ s \(8 together\)", run.calls), run.calls


def test_a_lone_delivery_is_sent_alone_as_it_comes(bridge, ortto, wordpress):
    contact_id, email = person(ortto)
    done = bridge.deliver("add", contact_id=contact_id)
    [run, _push] = bridge.store.history.of(done.id)
    assert done.status == DONE
    assert "together" not in run.calls
    sent = [line.split()[1:3] for line in run.calls.splitlines() if line.startswith("WordPress") and "/status" not in line]
    assert sent == [["GET", "/wpf-bridge/v1/users/lookup"], ["POST", "/wp/v2/users"]]


def test_php_dying_mid_batch_leaves_each_user_whole_or_absent_and_nobody_twice(bridge, ortto, wordpress):
    """PHP dies at the third of five writes: the first two are committed (and emailed), the third
    is rolled back, the rest never ran. The batch is refused as a whole, so it goes again in two
    halves: the two already made answer "email taken", are looked up again and found to be this
    delivery's own, finished with the password they were created with; the others are created."""
    people = [person(ortto) for _ in range(5)]
    deliveries = [bridge.store.ingest.add("add", cid, None, "customer", True)[0] for cid, _ in people]
    wordpress.crash_next_write(after=2)

    ended = run_group(bridge, deliveries)

    assert [d.status for d in ended] == [DONE] * 5, [d.result for d in ended]
    assert all(re.search(r"created user \d+", d.result) for d in ended)
    emails = [email for _, email in people]
    accounts = wordpress.accounts(emails)
    assert [len(accounts[email]) for email in emails] == [1] * 5
    assert all(accounts[email][0]["roles"] == ["customer"] for email in emails), "each written whole"
    assert [wordpress.mail_count()[email] for email in emails] == [1] * 5
    assert all(wordpress.logins({email: ortto.people[cid][PASSWORD_FIELD] for cid, email in people}).values())
    run = bridge.store.history.of(deliveries[0].id)[-2]
    assert re.search(r"users/batch 503 \S+ s \(5 together\)\n(.*\n)*.*users/batch 200 \S+ s \(2 together\)\n"
                     r"(.*\n)*.*users/lookup 200 \S+ s \(2 together\)", run.calls), run.calls


def test_an_older_companion_plugin_gets_the_calls_one_by_one_and_changes_no_existing_user(settings, env, ortto, caplog,
                                                                                           tmp_path):
    """Calls go one by one; a user it finds is not changed, since a plugin older than 1.4.0 cannot
    say what power the user holds on other sites or through plugins: that delivery fails, to be
    replayed once the plugin is updated."""
    from test_cli import run_cli
    from wordpress_site import WordPressSite

    site = WordPressSite(OLD_PLUGIN.read_text()).start()
    try:
        checked = run_cli({**env, "WORDPRESS_URL": site.url, "WORDPRESS_APP_PASSWORD": site.app_password}, "check",
                          cwd=tmp_path)
        assert "[FAIL] companion plugin 1.2.0 is outdated: it cannot say whether a user holds power" in checked.stdout, \
            checked.stdout
        bridge = Bridge(dataclasses.replace(settings, wordpress_url=site.url, wordpress_app_password=site.app_password))
        people = [person(ortto) for _ in range(3)]
        deliveries = [bridge.store.ingest.add("add", cid, None, None, False)[0] for cid, _ in people]
        with caplog.at_level(logging.WARNING):
            ended = run_group(bridge, deliveries)
        assert [d.status for d in ended] == [DONE] * 3
        assert [len(site.users_with_email(email)) for _, email in people] == [1] * 3
        assert sum("older than 1.3.0" in r.getMessage() for r in caplog.records) == 1
        assert not bridge.shared.batching.supported
        again = bridge.deliver("update", contact_id=people[0][0], role="customer")
        assert again.status == FAILED and "older than 1.4.0" in again.result, again.result
        assert site.user_by_email(people[0][1])["roles"] == ["subscriber"]
    finally:
        site.stop()


def test_a_group_holds_one_delivery_per_person_in_arrival_order(bridge, ortto, wordpress):
    contact_id, email = person(ortto)
    first = bridge.store.ingest.add("add", contact_id, None, None, False)[0]
    second = bridge.store.ingest.add("update", contact_id, None, None, False)[0]
    other = bridge.store.ingest.add("add", *person(ortto), None, False)[0]
    group = bridge.store.claims.claim(60, "me", limit=50)
    assert [d.id for d in group] == [first.id, other.id]
    assert bridge.store.deliveries.get(second.id).status == "queued"


def test_a_group_s_passwords_go_to_ortto_at_once(bridge, ortto, wordpress, monkeypatch):
    """Passwords are gathered for a while before they go; a group's are gathered already."""
    import threading

    from waiting import wait_for

    from wpf_bridge.worker import pusher

    monkeypatch.setattr(pusher, "GATHER_SECONDS", 600.0)
    first = bridge.store.ingest.add("add", person(ortto)[0], None, None, False)[0]
    assert bridge.runner.run_next()
    applied = threading.Event()
    pushing = threading.Thread(target=bridge.shared.pusher.push_until, args=(applied,))
    pushing.start()
    try:
        wait_for(lambda: bridge.store.deliveries.get(first.id).status == DONE, 30, "the first push")  # then it gathers
        group = [bridge.store.ingest.add("add", person(ortto)[0], None, None, False)[0] for _ in range(2)]
        assert bridge.runner.run_next()
        wait_for(lambda: {bridge.store.deliveries.get(d.id).status for d in group} == {DONE}, 30, "the group's push")
    finally:
        applied.set()
        bridge.shared.pusher.wake()
        pushing.join(30)
    assert not pushing.is_alive(), "woken to stop"
    assert len(ortto.calls_to("/v1/person/merge")) == 2
