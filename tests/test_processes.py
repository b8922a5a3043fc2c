"""End to end through the real Procfile processes: gunicorn web + Huey worker, real WordPress, Ortto test server."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import PASSWORD_FIELD, unique_email, wait_for
from wordpress_site import free_port

from wpf_bridge.store import DONE, FAILED, SKIPPED, Store, sqlite_path

ROOT = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def process_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, **env, "PATH": path, **extra}


class Processes:
    def __init__(self, env: dict[str, str], tmp_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logs = {}
        self.procs = {}
        self.store = Store(sqlite_path(env["DATABASE_URL"]))
        for name, command in procfile().items():
            self.logs[name] = tmp_path / f"{name}.log"
            self.procs[name] = subprocess.Popen(
                ["bash", "-c", command.strip()], cwd=tmp_path, env=process_env(env, PORT=str(self.port)),
                stdout=self.logs[name].open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
            )

    def up(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited: {self.logs[name].read_text()}")
        try:
            return requests.get(self.url + "/health", timeout=1).ok
        except requests.ConnectionError:
            return False

    def wait_until_applied(self, delivery_ids: list[str]) -> None:
        """Poll the delivery store until each delivery has ended (done or skipped), failing on failure."""
        def ended():
            records = [self.store.get(i) for i in delivery_ids]
            failed = [r.result for r in records if r and r.status == FAILED]
            assert not failed, failed
            return all(r and r.status in (DONE, SKIPPED) for r in records)

        wait_for(ended, 30, f"deliveries {delivery_ids} to be applied")

    def stop(self) -> dict[str, int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        return {name: proc.wait(30) for name, proc in self.procs.items()}

    def output(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs.values())


@pytest.fixture
def processes(env, tmp_path):
    procs = Processes(env, tmp_path)
    wait_for(procs.up, 30, "web to answer /health")
    yield procs
    procs.stop()


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

    assert set(processes.stop().values()) == {0}, processes.output()
    logs = processes.output()
    assert "\"POST /\" 202" in logs, "the access log is on, without query strings"
    for secret in [key, env["WORDPRESS_APP_PASSWORD"], env["ORTTO_API_KEY"], env["WPF_SECRET_KEY"], password]:
        assert secret not in logs


@pytest.mark.parametrize("process", ["web", "worker"])
def test_bad_setting_stops_start_up_with_one_line(env, tmp_path, process):
    bad = {**env, "WORDPRESS_URL": "not a url"}
    result = subprocess.run(
        ["bash", "-c", procfile()[process].strip()], cwd=tmp_path, env=process_env(bad, PORT=str(free_port())),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["wpf-bridge: setting WORDPRESS_URL: must be an http:// or https:// URL"]
