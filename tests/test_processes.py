"""End to end through the real Procfile processes: gunicorn web + worker, real WordPress, Ortto test server."""
from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import PASSWORD_FIELD, unique_email
from procfile import ROOT, process_env, procfile
from waiting import wait_for
from wordpress_site import free_port


def test_procfile_processes_apply_every_action_in_both_payload_shapes(processes, env, ortto, wordpress):
    key = env["WPF_ACCESS_KEY"].split(",")[0]
    flat_email, nested_email = unique_email("flat"), unique_email("nested")
    flat_id = ortto.add_person({"str::email": flat_email, "str::first": "Flat", "str:cm:company": "Acme"}, ["a"])
    nested_id = ortto.add_person({"str::email": nested_email, "str::first": "Nested"}, ["b"])

    flat = {"campaign_id": "c", "contact_id": flat_id, "email": flat_email, "id": "evt", "run_id": "r", "webhook_id": "w"}
    nested = {"activity": {"field_id": "act::s-all"}, "contact": {"contact_id": nested_id, "email": nested_email}, "id": "evt2"}
    answers = [
        requests.post(f"{processes.url}/?wpf_action=add&access_key={key}&role=customer&send_notification=true", json=flat),
        requests.post(f"{processes.url}/webhook?wpf_action=add_user&access_key={key}", json=nested),
    ]
    assert [a.status_code for a in answers] == [202, 202]

    processes.wait_until_applied([a.json()["delivery_id"] for a in answers])
    flat_user, nested_user = wordpress.user_by_email(flat_email), wordpress.user_by_email(nested_email)
    assert flat_user["roles"] == ["customer"] and nested_user["roles"] == ["subscriber"]
    assert wordpress.user_meta(flat_user["id"], "company") == "Acme"
    assert len(wordpress.emails_to(flat_email)) == 1 and wordpress.emails_to(nested_email) == []
    password = ortto.people[flat_id][PASSWORD_FIELD]

    ortto.people[flat_id].update({"str::first": "Renamed", "tags": ["a", "z"]})
    ortto.people[nested_id]["tags"] = ["c"]
    answers = [
        requests.get(f"{processes.url}/?wpf_action=update&access_key={key}&contact_id={flat_id}"),
        requests.post(f"{processes.url}/?wpf_action=update_tags&access_key={key}", json=nested),
    ]
    processes.wait_until_applied([a.json()["delivery_id"] for a in answers])
    assert wordpress.user_by_email(flat_email)["first_name"] == "Renamed"
    assert wordpress.user_meta(flat_user["id"], "ortto_tags") == ["a", "z"]
    assert wordpress.user_meta(nested_user["id"], "ortto_tags") == ["c"]

    test_event = {"activity": {"field_id": "act::test_webhook"}, "contact": {}}
    assert requests.post(f"{processes.url}/?wpf_action=add&access_key={key}", json=test_event).json() == {"success": True}
    assert requests.post(f"{processes.url}/?wpf_action=add&access_key=nope", json=flat).status_code == 403

    ready = requests.get(f"{processes.url}/ready").json()
    assert ready["status"] == "ok" and ready["waiting"] == 0 and ready["worker_heartbeat_seconds_ago"] < 15

    assert set(processes.stop().values()) == {0}, processes.output()
    logs = processes.output()
    assert "\"POST /\" 202" in logs, "the access log is on, without query strings"
    for secret in [key, env["WORDPRESS_APP_PASSWORD"], env["ORTTO_API_KEY"], env["WPF_SECRET_KEY"], password]:
        assert secret not in logs


def test_worker_killed_mid_delivery_is_finished_by_the_next_worker(start_processes, env, ortto, wordpress):
    """kill -9 while the password push hangs: the user exists, its password waits sealed in the
    store. A new worker takes the push over at once (its process is gone): one user, one email, the same
    password."""
    processes = start_processes()  # the default lease (30 s): the restarted worker ends the dead one's at once
    key = env["WPF_ACCESS_KEY"].split(",")[0]
    email = unique_email("killed")
    contact_id = ortto.add_person({"str::email": email, "str::first": "Killed"})
    gate = ortto.hold("/v1/person/merge")
    answer = requests.post(f"{processes.url}/?wpf_action=add&access_key={key}&send_notification=true",
                           json={"contact_id": contact_id})
    assert answer.status_code == 202
    wait_for(lambda: ortto.calls_to("/v1/person/merge"), 30, "the worker to be mid password push")
    processes.kill("worker")
    assert processes.store.deliveries.get(answer.json()["delivery_id"]).status == "pushing"
    gate.set()
    processes.start("worker")
    processes.wait_until_applied([answer.json()["delivery_id"]])
    processes.stop()
    assert len(wordpress.users_with_email(email)) == 1
    assert len(wordpress.emails_to(email)) == 1
    passwords = {call["people"][0]["fields"][PASSWORD_FIELD] for call in ortto.calls_to("/v1/person/merge")}
    assert len(passwords) == 1, "every push carries the same password"
    assert wordpress.php_eval(
        f"echo is_wp_error(wp_authenticate(base64_decode('{_b64(email)}'), base64_decode('{_b64(passwords.pop())}'))) ? 'no' : 'yes';"
    ).strip() == "yes"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("process", ["web", "worker"])
def test_bad_setting_stops_start_up_with_one_line(env, tmp_path, process):
    bad = {**env, "WORDPRESS_URL": "not a url"}
    result = subprocess.run(
        ["bash", "-c", procfile()[process].strip()], cwd=tmp_path, env=process_env(bad, PORT=str(free_port())),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["wpf-bridge: setting WORDPRESS_URL: must be an http:// or https:// URL"]


def test_a_port_in_use_stops_the_web_process_with_one_line(env, tmp_path):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = f"127.0.0.1:{holder.getsockname()[1]}"
        result = subprocess.run(["bash", "-c", procfile()["web"].strip()], cwd=tmp_path, capture_output=True, text=True,
                                env=process_env({**env, "WPF_BIND": taken}), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"wpf-bridge: cannot listen on {taken}: the port is in use by another program; set PORT (or WPF_BIND) to a free one"]


def test_make_run_on_a_fresh_clone_starts_serves_health_and_stops_cleanly(tmp_path):
    """The README's first command, in a copy of the project with no .env: it writes one with fresh
    keys, starts web and worker through honcho (the Procfile's commands found in the venv), serves
    /health, warns that the template still needs editing, and stops both on SIGTERM."""
    clone = tmp_path / "clone"
    for name in subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split():
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    port = free_port()
    log = tmp_path / "make-run.log"
    # the project's venv stands in for the one `make run` would install (CI's `make test` installs it in its clone)
    make = subprocess.Popen(["make", "run", f"VENV={Path(sys.executable).parent.parent}", "STAMP="], cwd=clone,
                            env={**os.environ, "PORT": str(port)}, stdout=log.open("wb"),  # wins over .env's PORT
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/health"), 60, "make run to serve /health")
        wait_for(lambda: "worker started" in log.read_text(), 30, "the worker to start")
        # both gunicorn workers have loaded the app (each warns of the placeholders): a SIGTERM in the
        # middle of a boot can leave gunicorn waiting on the worker it was forking, and honcho kills it
        # 5 s later (gunicorn's race, not the bridge's)
        wait_for(lambda: log.read_text().count("WARNING wpf_bridge.web: settings still hold") >= 2, 30,
                 "gunicorn's two workers to load the app")
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(30)
        wait_for(lambda: not _group_alive(make.pid), 30, "web and worker to stop")
    output = log.read_text()
    assert (clone / ".env").stat().st_mode & 0o777 == 0o600
    assert "settings still hold config/env.example's placeholders: WORDPRESS_URL, WORDPRESS_APP_PASSWORD, ORTTO_API_KEY" in output
    assert "worker stopped" in output and "Shutting down: Master" in output, output
    assert "not found" not in output


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def answers(url: str, verify: bool | str = True) -> bool:
    """Does ``url`` answer 2xx yet (``verify``: a CA file for a self-signed certificate)?"""
    try:
        return requests.get(url, timeout=1, verify=verify).ok
    except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still booting
        return False
