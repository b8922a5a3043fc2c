"""Metrics, JSON log lines and alerts: what an operator's monitoring reads."""
from __future__ import annotations

import json
import os
import secrets
import stat
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from conftest import hold, unique_email
from inprocess import Bridge
from prometheus_client.parser import text_string_to_metric_families

from wpf_bridge.clients.alerts import AlertClient
from wpf_bridge.settings import SettingsError, load_settings
from wpf_bridge.store import Store
from wpf_bridge.types import FAILED
from wpf_bridge.web import create_app
from wpf_bridge.worker.alerts import QUIET, Alerts

TOKEN = "metrics-" + secrets.token_hex(12)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape, parsed as Prometheus would: (name, sorted labels): value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(get) -> dict[tuple[str, tuple], float]:
    answer = get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain; version=")
    return samples(answer.text if hasattr(answer, "text") else answer.get_data(as_text=True))


def test_metrics_are_off_without_a_token_and_need_it(settings, env):
    assert create_app(settings).test_client().get("/metrics").status_code == 404
    client = create_app(load_settings({**env, "WPF_METRICS_TOKEN": TOKEN})).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
        answer = client.get("/metrics", headers=headers)
        assert answer.status_code == 401 and "wpf_bridge" not in answer.text
    assert client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200  # any case (RFC 7235)
    with pytest.raises(SettingsError, match="WPF_METRICS_TOKEN: must be at least 16"):
        load_settings({**env, "WPF_METRICS_TOKEN": "short"})


def test_webhook_and_delivery_figures_in_process(env, ortto, wordpress):
    settings = load_settings({**env, "WPF_METRICS_TOKEN": TOKEN})
    client = create_app(settings).test_client()
    key = settings.access_keys[0]
    before = scrape(client.get)
    email = unique_email("metric")
    person_id = ortto.add_person({"str::email": email, "str::first": "M"}, [])
    assert client.post(f"/?wpf_action=add&access_key={key}&contact_id={person_id}").status_code == 202
    assert client.post(f"/?wpf_action=add&access_key={key}&contact_id={person_id}").status_code == 202  # a redelivery
    assert client.post(f"/?wpf_action=add&access_key=wrong-{key}&contact_id={person_id}").status_code == 403
    assert client.post(f"/?wpf_action=nope&access_key={key}&contact_id={person_id}").status_code == 400
    bridge = Bridge(settings)
    assert bridge.runner.run_next() and not bridge.runner.run_next()
    bridge.shared.pusher.push_due()
    after = scrape(client.get)

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("wpf_bridge_webhooks_received_total", result="accepted") == 1
    assert grew("wpf_bridge_webhooks_received_total", result="redelivery") == 1
    assert grew("wpf_bridge_webhooks_received_total", result="wrong_key") == 1
    assert grew("wpf_bridge_webhooks_received_total", result="invalid") == 1
    assert grew("wpf_bridge_delivery_attempts_total", action="add", outcome="pushing") == 1
    assert grew("wpf_bridge_delivery_attempts_total", action="password_push", outcome="done") == 1
    assert grew("wpf_bridge_delivery_attempt_duration_seconds_count", action="add") == 1
    assert grew("wpf_bridge_peer_request_duration_seconds_count", peer="wordpress", status_class="2xx") >= 2
    assert grew("wpf_bridge_peer_request_duration_seconds_count", peer="ortto", status_class="2xx") >= 2
    assert after[("wpf_bridge_deliveries", (("status", "done"),))] == 1
    assert after[("wpf_bridge_oldest_waiting_delivery_age_seconds", ())] == 0
    assert after[("wpf_bridge_last_success_timestamp_seconds", ())] > 0
    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    for private in (email, person_id, key, TOKEN):
        assert private not in text


def test_processes_share_figures_and_write_json_lines(start_processes, env, ortto, wordpress, tmp_path):
    procs = start_processes(WPF_METRICS_TOKEN=TOKEN, WPF_LOG_FORMAT="json", WPF_METRICS_DIR=str(tmp_path / "metrics"))
    key = env["WPF_ACCESS_KEY"].split(",")[0]
    person_id = ortto.add_person({"str::email": unique_email("json"), "str::first": "J"}, [])
    answer = requests.post(f"{procs.url}/?wpf_action=add&access_key={key}&contact_id={person_id}")
    assert requests.post(f"{procs.url}/?wpf_action=add&access_key=nope&contact_id=x").status_code == 403
    delivery_id = answer.json()["delivery_id"]
    procs.wait_until_applied([delivery_id])

    figures = scrape(lambda path, **kw: requests.get(procs.url + path, **kw))  # from the web: the worker's figures too
    assert figures[("wpf_bridge_delivery_attempts_total", (("action", "add"), ("outcome", "pushing")))] >= 1
    assert figures[("wpf_bridge_peer_request_duration_seconds_count", (("peer", "wordpress"), ("status_class", "2xx")))] >= 2
    assert figures[("wpf_bridge_webhooks_received_total", (("result", "accepted"),))] >= 1
    assert figures[("wpf_bridge_deliveries", (("status", "done"),))] == 1

    assert set(procs.stop().values()) == {0}
    lines = [line for name, path in procs.logs.items() for line in path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    about = [r for r in records if delivery_id in r["message"]]
    assert about and all(r.get("delivery_id") == delivery_id for r in about if r["logger"].startswith("wpf_bridge.worker"))
    assert any("refused webhook: 403" in r["message"] for r in records)
    whole = "\n".join(lines)
    for secret in load_settings(env).secrets() + [TOKEN]:
        assert secret not in whole


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append(body)
        self.send_response(self.server.answer)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received, server.answer = [], 200
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def fail(store: Store, reason: str) -> float:
    delivery = store.ingest.add("add", None, unique_email("alert"), None, False)[0]
    store.runs.finish(delivery.id, FAILED, reason, owner=hold(store, delivery.id))
    return store.deliveries.get(delivery.id).updated_at


def test_one_alert_per_burst_naming_the_count_and_reasons(database_url, receiver):
    store = Store(database_url)
    url = f"http://127.0.0.1:{receiver.server_port}/hooks/T0/B0/secret"
    workers = [Alerts(store, AlertClient(url), [url, "app-pass-99"]) for _ in range(2)]
    assert workers[0].check() == 0  # the first start sets the mark: older failures are not news
    last = [fail(store, "WordPress refused the user: bad (x)") for _ in range(2)][-1]
    last = fail(store, "Ortto has no contact with app-pass-99 or \"<!channel><https://evil.test|Fix>\"@x.test")
    assert workers[0].check(now=last + 1) == 0, "the burst may go on"
    assert [w.check(now=last + QUIET + 1) for w in workers] in ([3, 0], [0, 3])  # one worker sends it
    [message] = receiver.received
    assert message["text"].startswith("wpf-bridge: 3 deliveries failed for good between")
    assert "• 2× WordPress refused the user: bad (x)" in message["text"]
    assert "• 1× Ortto has no contact with [redacted] or &lt;…@x.test" in message["text"]
    assert workers[1].check(now=last + QUIET + 2) == 0 and len(receiver.received) == 1

    receiver.answer = 500
    last = fail(store, "WordPress cannot be reached")
    assert workers[0].check(now=last + QUIET + 1) == 0, "not taken: kept for the next round"
    receiver.answer = 200
    assert workers[1].check(now=last + QUIET + 2) == 1
    assert "1 delivery failed" in receiver.received[-1]["text"] and len(receiver.received) == 3


def test_alert_webhook_must_be_a_url(env):
    with pytest.raises(SettingsError, match="WPF_ALERT_WEBHOOK"):
        load_settings({**env, "WPF_ALERT_WEBHOOK": "hooks.slack.com/x"})
    assert "https://hooks.slack.test/T/B/x" in load_settings({**env, "WPF_ALERT_WEBHOOK": "https://hooks.slack.test/T/B/x"}).secrets()


def test_metrics_folder_is_named_without_the_database_password():
    from wpf_bridge.metrics_folder import directory

    assert directory("postgresql://u:one@db:5432/bridge", None) == directory("postgresql://u:two@db:5432/bridge", None)
    assert directory("postgresql://u:one@db:5432/bridge", None) != directory("postgresql://u:one@db:5432/other", None)


def test_metrics_folder_on_postgresql_is_private_in_the_users_state_folder(tmp_path, monkeypatch):
    """Not a predictable name in the shared /tmp, which another local user could make first; the
    same for every process of the user and store (XDG_RUNTIME_DIR differs between a login shell
    and a service, so it is not used), and created mode 700."""
    from wpf_bridge.metrics_folder import MULTIPROC_ENV, directory, prepare

    url = "postgresql://u:p@db:5432/bridge"
    assert not directory(url, None).is_relative_to(tempfile.gettempdir())
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    folder = directory(url, None)
    assert folder.is_relative_to(home / ".local" / "state" / "wpf-bridge")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert directory(url, None) == folder
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)  # prepare sets it: undone after the test
    prepare(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert directory(url, None).is_relative_to(tmp_path / "state" / "wpf-bridge")


@pytest.mark.parametrize("case", ["open to all", "another owner", "link of another owner", "link to another's"])
def test_metrics_folder_of_another_user_or_open_to_others_is_refused(tmp_path, case):
    """Another user's folder (or link) could feed the figures or read them: refuse it, in one line
    saying what to do."""
    from wpf_bridge.metrics_folder import prepare

    if case != "open to all" and os.geteuid() != 0:
        pytest.skip("giving a file to another owner needs root")
    folder, other = tmp_path / "metrics", 54321
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    if case == "open to all":
        folder.mkdir()
        folder.chmod(0o777)
    elif case == "another owner":
        folder.mkdir(mode=0o700)
        os.chown(folder, other, other)
    else:
        folder.symlink_to(target)
        os.chown(target if case == "link to another's" else folder, other, other, follow_symlinks=False)
    with pytest.raises(ValueError) as refused:
        prepare(folder)
    assert "\n" not in str(refused.value) and "set WPF_METRICS_DIR" in str(refused.value)
    assert f"the metrics folder {folder} must belong to this user and be private (mode 700)" in str(refused.value)


def test_metrics_folder_that_cannot_be_made_says_what_to_do(tmp_path):
    from wpf_bridge.metrics_folder import prepare

    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"cannot create the metrics folder .*: set WPF_METRICS_DIR"):
        prepare(tmp_path / "file" / "metrics")
