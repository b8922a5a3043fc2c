"""``make demo``: the whole product on this machine in two minutes, with nothing of your own.

Starts a throwaway WordPress (the tests' set-up: Debian's WordPress, MariaDB, PHP), the Ortto
test server seeded with sample people, and the bridge's web and worker processes with the
console and metrics on; sends a small journey's worth of webhooks, one of which fails; prints
where to look. Then it waits for commands (stop or start WordPress, send a burst, add the
missing person to Ortto) until Ctrl-C or ``q``, and removes everything it started.

``--self-test`` runs the same journey without waiting for anyone and exits 0 when every
delivery ended as expected (``tests/test_demo.py`` runs it).
"""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from ortto_server import OrttoServer  # noqa: E402
from wordpress_site import WordPressSite, free_port  # noqa: E402

from wpf_bridge import companion  # noqa: E402
from wpf_bridge.check import webhook_urls  # noqa: E402
from wpf_bridge.settings import load_settings  # noqa: E402
from wpf_bridge.store import Search, Store  # noqa: E402

PASSWORD_FIELD = "str:cm:wp-password"
PEOPLE = [  # (first, last, tags, role asked, welcome email)
    ("Ada", "Lovelace", ["customer", "vip"], "customer", True),
    ("Grace", "Hopper", ["customer"], "customer", False),
    ("Alan", "Turing", ["newsletter"], None, True),
    ("Katherine", "Johnson", ["newsletter", "webinar"], None, False),
]
LATE = ("Hedy", "Lamarr")  # sent before Ortto knows her: her delivery fails until she is added and replayed
WAIT = 60.0


class Demo:
    def __init__(self, port: int):
        self.folder = Path(tempfile.mkdtemp(prefix="wpf-bridge-demo-"))
        self.port = port
        self.site: WordPressSite | None = None
        self.ortto: OrttoServer | None = None
        self.processes: dict[str, subprocess.Popen] = {}
        self.key = secrets.token_hex(16)
        self.console_password = "demo-" + secrets.token_urlsafe(9)
        self.metrics_token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{port}"
        self.people: dict[str, str] = {}  # email: Ortto person id
        self.late_id = "0069" + secrets.token_hex(10)
        self.late_email = f"{LATE[0].lower()}@demo.example"

    def start(self) -> None:
        say("starting WordPress (Debian's package, on MariaDB and php -S)…")
        self.site = WordPressSite(companion.source()).start()
        say(f"  WordPress {self.site.url} (admin / {self.site.admin_password})")
        self.ortto = OrttoServer().start()
        self.ortto.state.declare(PASSWORD_FIELD)
        for first, last, tags, _, _ in PEOPLE:
            email = f"{first.lower()}@demo.example"
            self.people[email] = self.ortto.state.add_person({"str::email": email, "str::first": first, "str::last": last}, tags)
        say(f"  Ortto test server {self.ortto.url} with {len(PEOPLE)} people (see {self.ortto.url}/admin)")
        self.env_file = env_file = self.folder / ".env"
        self.env = {
            "WPF_ACCESS_KEY": self.key, "WPF_SECRET_KEY": secrets.token_hex(32),
            "WORDPRESS_URL": self.site.url, "WORDPRESS_USER": self.site.admin_user,
            "WORDPRESS_APP_PASSWORD": self.site.app_password,
            "ORTTO_API_KEY": self.ortto.state.api_key, "ORTTO_API_URL": self.ortto.url,
            "ORTTO_PASSWORD_FIELD": PASSWORD_FIELD, "WPF_ALLOWED_ROLES": "customer",
            "DATABASE_URL": f"sqlite:///{self.folder / 'bridge.db'}", "WPF_BIND": f"127.0.0.1:{self.port}",
            "WPF_CONSOLE_PASSWORD": self.console_password, "WPF_METRICS_TOKEN": self.metrics_token,
            "WEB_CONCURRENCY": "2",
        }
        env_file.write_text("\n".join(f"{k}={v}" for k, v in self.env.items()) + "\n")
        env_file.chmod(0o600)
        command = Path(sys.executable).parent / "wpf-bridge"
        subprocess.run([str(command), "--env-file", str(env_file), "migrate"], cwd=self.folder, check=True,
                       stdout=subprocess.DEVNULL)
        for kind in ("web", "worker"):
            self.processes[kind] = subprocess.Popen(
                [str(command), "--env-file", str(env_file), kind], cwd=self.folder, start_new_session=True,
                stdout=(self.folder / f"{kind}.log").open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self._healthy():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes.values()):
                raise SystemExit(f"the bridge did not start; see {self.folder}/web.log and worker.log")
            time.sleep(0.2)
        say(f"  bridge {self.url} (web + worker; logs in {self.folder})")

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/health", timeout=1).ok
        except requests.RequestException:
            return False

    def webhook(self, action: str, body: dict, **params: str) -> str:
        answer = requests.post(f"{self.url}/", params={"wpf_action": action, **params}, json=body,
                               headers={"X-WPF-Access-Key": self.key}, timeout=10)
        answer.raise_for_status()
        return answer.json()["delivery_id"]

    def journey(self) -> dict[str, str]:
        """What a small Ortto journey sends: adds, an update, a tags change, and one that fails.
        Returns the delivery ids by what they are for."""
        sent = {}
        for first, last, _, role, notify in PEOPLE:
            email = f"{first.lower()}@demo.example"
            params = {"send_notification": "true"} if notify else {}
            if role:
                params["role"] = role
            sent[f"add {email}"] = self.webhook("add", {"contact_id": self.people[email], "email": email}, **params)
        sent[f"add {self.late_email}"] = self.webhook("add", {"contact_id": self.late_id, "email": self.late_email})
        self._wait_ended(list(sent.values()))
        ada = self.people["ada@demo.example"]
        self.ortto.state.people[ada]["str::first"] = "Augusta Ada"
        self.ortto.state.people[ada]["tags"] = ["customer", "vip", "webinar"]
        sent["update ada"] = self.webhook("update", {"contact_id": ada})
        sent["update_tags ada"] = self.webhook("update_tags", {"contact_id": ada})
        self._wait_ended(list(sent.values()))
        return sent

    def _wait_ended(self, ids: list[str]) -> dict[str, str]:
        store = Store(f"sqlite:///{self.folder / 'bridge.db'}")
        deadline = time.monotonic() + WAIT
        while True:
            statuses = {i: store.deliveries.get(i).status for i in ids}
            if all(s in ("done", "skipped", "failed") for s in statuses.values()) or time.monotonic() > deadline:
                return statuses
            time.sleep(0.2)

    def add_late_person(self) -> None:
        self.ortto.state.add_person({"str::email": self.late_email, "str::first": LATE[0], "str::last": LATE[1]},
                                    ["customer"], person_id=self.late_id)

    def burst(self, count: int = 5) -> None:
        for n in range(count):
            email = f"burst-{secrets.token_hex(3)}@demo.example"
            person = self.ortto.state.add_person({"str::email": email, "str::first": "Burst", "str::last": str(n)}, [])
            self.webhook("add", {"contact_id": person, "email": email}, send_notification="true")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if self.site:
            self.site.stop()
        if self.ortto:
            self.ortto.stop()
        subprocess.run(["rm", "-rf", str(self.folder)], check=False)

    def explain(self, sent: dict[str, str]) -> None:
        store = Store(f"sqlite:///{self.folder / 'bridge.db'}")
        say("\nThe journey's webhooks:")
        for what, delivery_id in sent.items():
            delivery = store.deliveries.get(delivery_id)
            say(f"  {what:34} {delivery.status:8} {delivery.result or ''}")
        failed = store.deliveries.count(Search(status="failed"))
        say(f"""
Console   {self.url}/console/     password: {self.console_password}
Metrics   curl -H 'Authorization: Bearer {self.metrics_token}' {self.url}/metrics
WordPress {self.site.url}/wp-admin/users.php   (admin / {self.site.admin_password})
Ortto     {self.ortto.url}/admin   (the test server's people, passwords included)
Webhook   {webhook_urls(load_settings(self.env), self.url, self.key)[0][1]}
CLI       {Path(sys.executable).parent / "wpf-bridge"} --env-file {self.env_file} deliveries   (the demo's settings)

{failed} delivery failed: Ortto had no contact for {self.late_email}. Type 'a' to add her to Ortto, then
see what a replay would do (the console's Preview page), open her delivery and click Replay.""")

    def commands(self) -> None:
        say("""
Commands (type a letter, then Enter):
          a = add the missing person to Ortto    s = stop WordPress    w = start WordPress again
          b = send a burst of 5 new people        q = quit (or Ctrl-C: everything started here is removed)""")
        for line in _lines(sys.stdin):
            command = line.strip().lower()
            if command == "a":
                self.add_late_person()
                say(f"added to Ortto: in the console, Preview {self.late_email} (add), then replay her failed delivery")
            elif command == "s":
                self.site.kill_server()
                say("WordPress stopped: send a burst (b) and watch the console show them retrying, and why")
            elif command == "w":
                self.site.start_server()
                say("WordPress is back: in the console, Deliveries > status retrying > Replay, or wait for the retry")
            elif command == "b":
                self.burst()
                say("5 webhooks sent")
            elif command == "q":
                return
            else:
                say("a, s, w, b or q, then Enter")


def _lines(stream):
    """The commands typed, until the input ends or the terminal is gone (closed window: EIO)."""
    try:
        yield from stream
    except OSError:
        return


def say(text: str) -> None:
    """Print, unless the output is gone (``make demo | tee`` with tee stopped by Ctrl-C first)."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, OSError):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--self-test", action="store_true", help="run the journey, check it, stop")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the Ortto test server's request lines
    port = args.port if args.port and _free(args.port) else free_port()
    demo = Demo(port)
    for signum in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal cleans up as Ctrl-C does
        signal.signal(signum, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        demo.start()
        sent = demo.journey()
        demo.explain(sent)
        if args.self_test:
            return _self_test(demo, sent)
        demo.commands()
    except KeyboardInterrupt:
        pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second signal must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        demo.stop()
        say("stopped the bridge, WordPress and the Ortto test server, and removed their files")
    return 0


def _self_test(demo: Demo, sent: dict[str, str]) -> int:
    """Every person but the late one applied, hers failed; then added and replayed, applied."""
    statuses = demo._wait_ended(list(sent.values()))
    late = sent[f"add {demo.late_email}"]
    expected = {i: ("failed" if i == late else "done") for i in sent.values()}
    if statuses != expected:
        say(f"self-test: unexpected outcomes {statuses}")
        return 1
    demo.add_late_person()
    Store(f"sqlite:///{demo.folder / 'bridge.db'}").operators.requeue(late, "the demo's self-test")
    if demo._wait_ended([late]) != {late: "done"}:
        say("self-test: the replayed delivery did not end done")
        return 1
    say("self-test: passed")
    return 0


def _free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


if __name__ == "__main__":
    raise SystemExit(main())
