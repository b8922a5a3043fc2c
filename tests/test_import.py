"""``wpf-bridge import --tag``: backfill the people who already carry a journey's tag, through the
real CLI, the Procfile worker, the real WordPress and the Ortto test server."""
from __future__ import annotations

from conftest import PASSWORD_FIELD, unique_email
from inprocess import can_log_in
from test_cli import run_cli


def tagged_account(ortto, tag: str, tagged: int, others: int) -> dict[str, str]:
    """An account where ``tagged`` new people carry ``tag`` among others who do not: contact id: email."""
    ortto.people.clear()
    people = {}
    for n in range(tagged + others):
        email = unique_email(f"import{n}")
        contact_id = ortto.add_person({"str::email": email, "str::first": f"Import{n}"},
                                      [tag, "newsletter"] if n < tagged else ["newsletter"])
        if n < tagged:
            people[contact_id] = email
    return people


def test_import_creates_each_tagged_person_once_and_a_rerun_queues_nobody(processes, env, ortto, wordpress, tmp_path):
    tag = "vip-" + unique_email()[5:10]
    people = tagged_account(ortto, tag, tagged=12, others=1190)  # three pages of 500

    first = run_cli(env, "import", "--tag", tag, "--notify", "--role", "customer", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "scanned 1,202 people in 3 page(s): 12 carry the tag" in first.stderr
    assert "queued 12 add deliveries (0 were queued by an earlier run)" in first.stdout and "done 12" in first.stdout
    for contact_id, email in people.items():
        [user] = wordpress.users_with_email(email)
        assert user["roles"] == ["customer"] and len(wordpress.emails_to(email)) == 1
        assert can_log_in(wordpress, user["username"], ortto.people[contact_id][PASSWORD_FIELD])
    assert len(processes.store.deliveries.find(limit=None)) == 12, "only the tagged were queued"

    dry = run_cli(env, "import", "--tag", tag, "--dry-run", cwd=tmp_path)
    assert ("would create 0 users and update 12 existing ones (their role unchanged); 12 of these were queued by an "
            "earlier run and would not be queued again") in dry.stdout, dry.stdout
    again = run_cli(env, "import", "--tag", tag, "--notify", cwd=tmp_path)
    assert again.returncode == 0 and "queued 0 add deliveries (12 were queued by an earlier run)" in again.stdout
    assert len(processes.store.deliveries.find(limit=None)) == 12
    assert all(len(wordpress.users_with_email(e)) == 1 and len(wordpress.emails_to(e)) == 1 for e in people.values())


def test_dry_run_counts_and_queues_nothing(processes, env, ortto, wordpress, tmp_path):
    people = tagged_account(ortto, "trial", tagged=3, others=2)
    ortto.add_person({"str::email": "admin@example.test", "str::first": "Mallory"}, ["trial"])
    existing = next(iter(people.values()))
    wordpress.php_eval(f"wp_insert_user(array('user_login' => 'pre-{existing[:8]}', 'user_email' => '{existing}', "
                       "'user_pass' => 'x-long-password-1'));")
    dry = run_cli(env, "import", "--tag", "trial", "--dry-run", "--role", "customer", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert ("would create 2 users and update 1 existing ones (their role set to 'customer'); 1 privileged "
            "(administrators and such) would be left alone (a dry run: nothing was queued)") in dry.stdout
    assert processes.store.deliveries.find(limit=None) == []


def test_ctrl_c_stops_watching_not_the_import(start_processes, env, ortto, tmp_path):
    """With no worker running, the import waits on its progress bar; Ctrl-C ends that, cleanly."""
    import signal
    import subprocess
    import sys

    from waiting import wait_for

    from wpf_bridge.store import Store
    from wpf_bridge.types import QUEUED

    tagged_account(ortto, "waiting", tagged=3, others=1)
    proc = subprocess.Popen([sys.executable, "-m", "wpf_bridge", "import", "--tag", "waiting"], cwd=tmp_path,
                            env={**__import__("os").environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = Store(env["DATABASE_URL"])
    wait_for(lambda: store.deliveries.counts().get(QUEUED) == 3, 30, "the import to queue its deliveries")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "stopped watching; the deliveries stay queued" in err and "Traceback" not in err
    assert store.deliveries.counts() == {QUEUED: 3}


def test_unknown_tag_refused_key_and_bad_input_queue_nothing(processes, env, ortto, tmp_path):
    tagged_account(ortto, "real", tagged=2, others=2)
    unknown = run_cli(env, "import", "--tag", "Real", cwd=tmp_path)
    assert unknown.returncode == 1 and "no contact carries the tag 'Real'" in unknown.stderr
    refused = run_cli({**env, "ORTTO_API_KEY": "wrong-key-0123456789"}, "import", "--tag", "real", cwd=tmp_path)
    assert refused.returncode == 2 and "Ortto refused the API key" in refused.stderr and "nothing was queued" in refused.stderr
    assert run_cli(env, "import", "--tag", "real", "--role", "administrator", cwd=tmp_path).returncode == 2
    assert run_cli(env, "import", "--tag", "real", "--filter", "{not json", cwd=tmp_path).returncode == 2
    assert processes.store.deliveries.find(limit=None) == []


def test_a_rate_limited_scan_waits_as_ortto_says_and_completes(processes, env, ortto, tmp_path):
    tagged_account(ortto, "slow", tagged=2, others=600)
    ortto.fail_next(429, {"error": {"code": "rate-limit", "message": "rate limit", "try-in-seconds": 1}},
                    path="/v1/person/get")
    run = run_cli(env, "import", "--tag", "slow", "--no-wait", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "queued 2 add deliveries" in run.stdout
    requests_sent = ortto.calls_to("/v1/person/get")
    assert len(requests_sent) == 3 and requests_sent[0] == requests_sent[1], "the refused page was asked again"
