"""wpf-bridge benchmarks, measured side by side in one run on this machine (``make bench``).

1. Ingest: webhooks/s and p50/p99 answer time under wrk (16 connections, loopback) for the bridge
   on SQLite and on PostgreSQL, next to a bare Flask endpoint answering 202 under the same
   gunicorn settings (the ceiling of the stack). No worker runs: this is the web process alone.
   Each runs with the gevent workers the bridge uses and, for comparison, with gunicorn's sync
   workers it used before; and the bridge once more while 40 clients hold connections open with
   a body that never arrives (a sync worker is held by each).
2. Drain: N new-user ``add`` deliveries against a real local WordPress (Debian's package, the
   companion plugin, ``php -S`` with 4 PHP workers) and the Ortto test server: time from the first
   request until every delivery is done (user created, password in Ortto), next to the floor of
   one request per call: a script making only a look-up and a create per user, 4 at a time. Each
   runs on a fresh WordPress of its own. WordPress and Ortto calls per delivery are counted at
   the servers, and the CPU seconds of WordPress's PHP processes per 1,000 users. The bridge runs
   twice: with webhooks arriving while the worker applies them, and with all of them queued before
   the worker starts (as ``import --tag`` queues them), timed from the worker's start.
3. Memory: peak RSS (VmHWM) of a gunicorn web worker and of the worker process during the drain.

Prints a table and writes ``bench/results/results.json``. Figures, not pass/fail.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from ortto_server import OrttoServer  # noqa: E402
from wordpress_site import WordPressSite, free_port  # noqa: E402

from wpf_bridge import companion  # noqa: E402
from wpf_bridge.store import Store, migrate_store  # noqa: E402
from wpf_bridge.types import DONE  # noqa: E402

PASSWORD_FIELD = "str:cm:wp-password"
POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
BIN = Path(sys.executable).parent


class Bench:
    def __init__(self, work: Path):
        self.work = work
        self.databases: list[str] = []  # PostgreSQL databases it created, dropped by close()
        self.wordpress = WordPressSite(companion.source()).start()
        self.ortto = OrttoServer().start()
        self.ortto.state.declare(PASSWORD_FIELD)
        self.key = secrets.token_hex(16)
        (work / "fields.toml").write_text('[fields]\nfirst_name = "str::first"\nlast_name = "str::last"\n')

    def fresh_wordpress(self) -> None:
        self.wordpress.stop()
        self.wordpress = WordPressSite(companion.source()).start()

    def env(self, database_url: str, **extra: str) -> dict[str, str]:
        return {
            **os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
            "WPF_ACCESS_KEY": self.key, "WPF_SECRET_KEY": secrets.token_hex(16),
            "WORDPRESS_URL": self.wordpress.url, "WORDPRESS_USER": self.wordpress.admin_user,
            "WORDPRESS_APP_PASSWORD": self.wordpress.app_password,
            "ORTTO_API_KEY": self.ortto.state.api_key, "ORTTO_API_URL": self.ortto.url,
            "ORTTO_PASSWORD_FIELD": PASSWORD_FIELD, "WPF_ALLOWED_ROLES": "customer",
            "WPF_FIELD_MAP": str(self.work / "fields.toml"), "DATABASE_URL": database_url, **extra,
        }

    def start(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen:
        log = (self.work / f"{name}.log").open("ab")
        return subprocess.Popen(args, cwd=self.work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def new_database(self, kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.work / ('bench-' + secrets.token_hex(4) + '.db')}"
        name = "wpf_bench_" + secrets.token_hex(4)
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f"create database {name}")
        self.databases.append(name)
        return f"{POSTGRES}/{name}"

    def people(self, n: int, prefix: str) -> list[str]:
        return [self.ortto.state.add_person({"str::email": f"{prefix}-{i}-{secrets.token_hex(3)}@example.test",
                                             "str::first": "Bench", "str::last": str(i)}) for i in range(n)]

    def php_cpu_seconds(self) -> float:
        """CPU seconds php -S and its PHP workers have used so far (the workers it has reaped included)."""
        return cpu_seconds(self.wordpress.process.pid)

    def wordpress_requests(self) -> int:
        """Requests php -S has logged so far (one "Accepted" line per connection is not a request)."""
        text = (self.wordpress.root / "php-server.log").read_text(errors="replace")
        return len(re.findall(r"\]: (?:GET|POST|PUT|PATCH|DELETE) ", text))

    # 1. ingest

    def ingest(self, label: str, app: str, database_url: str, seconds: int, workers: str, stalled: int = 0) -> dict:
        """``workers``: gunicorn's worker class; ``stalled``: clients holding a connection open with a
        body that never comes, opened before wrk starts and kept open throughout."""
        port = free_port()
        env = self.env(database_url, PORT=str(port), GUNICORN_CMD_ARGS=f"--worker-class {workers}")
        migrate_store(database_url)  # schema first, as the release step would
        web = self.start([str(BIN / "gunicorn"), "-c", "python:wpf_bridge.gunicorn_conf", app], env, f"ingest-{label}")
        held: list[socket.socket] = []
        try:
            wait_until(lambda: _answers(f"http://127.0.0.1:{port}/health") or _answers(f"http://127.0.0.1:{port}/"), 30)
            url = f"http://127.0.0.1:{port}/?wpf_action=add&access_key={self.key}"
            subprocess.run(["wrk", "-t2", "-c16", "-d2s", "-s", str(ROOT / "bench" / "webhook.lua"), url],
                           capture_output=True, check=True)  # warm-up
            held = [_stall(port) for _ in range(stalled)]
            out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--timeout", "2s", "--latency", "-s",
                                  str(ROOT / "bench" / "webhook.lua"), url], capture_output=True, text=True, check=True).stdout
            rss = max(peak_rss(pid) for pid in children(web.pid))
        finally:
            for client in held:
                client.close()
            stop(web)
        result = parse_wrk(out)
        result["web_worker_peak_rss_mb"] = rss
        if "bridge" in label:
            result["stored"] = sum(Store(database_url).deliveries.counts().values())
        return result

    # 2. drain

    def drain(self, n: int, database_url: str, queued_first: bool = False) -> dict:
        """N adds sent as webhooks while the worker applies them; or, ``queued_first``, all queued
        before the worker starts (as an import queues them), timed from the worker's start."""
        contacts = self.people(n, f"drain{n}")
        port = free_port()
        env = self.env(database_url, PORT=str(port), WEB_CONCURRENCY="2")
        migrate_store(database_url)
        web = self.start([str(BIN / "wpf-bridge"), "web"], env, f"drain-web-{n}")
        worker = None if queued_first else self.start([str(BIN / "wpf-bridge"), "worker"], env, f"drain-worker-{n}")
        store = Store(database_url)
        try:
            wait_until(lambda: _answers(f"http://127.0.0.1:{port}/health"), 30)
            wp_before, ortto_before, cpu_before = self.wordpress_requests(), len(self.ortto.state.calls), self.php_cpu_seconds()
            db_before, own_before, web_before = mariadb_cpu_seconds(), _own_cpu_seconds(), cpu_seconds(web.pid)
            url = f"http://127.0.0.1:{port}/?wpf_action=add&access_key={self.key}&role=customer"
            session = requests.Session()
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=16) as pool:
                answers = list(pool.map(lambda cid: session.post(url, json={
                    "campaign_id": "drain", "contact_id": cid, "run_id": secrets.token_hex(4)}).status_code, contacts))
            accepted = time.monotonic() - started
            if worker is None:
                worker = self.start([str(BIN / "wpf-bridge"), "worker"], env, f"drain-worker-{n}")
                started = time.monotonic()
            wait_until(lambda: store.deliveries.counts().get(DONE, 0) >= n, 3600, poll=0.2)
            elapsed = time.monotonic() - started
            cpu = self.php_cpu_seconds() - cpu_before
            others = {"mariadb": mariadb_cpu_seconds() - db_before, "worker": cpu_seconds(worker.pid),
                      "web": cpu_seconds(web.pid) - web_before, "ortto_and_sender": _own_cpu_seconds() - own_before}
            web_rss = max(peak_rss(pid) for pid in children(web.pid))
            worker_rss = peak_rss(worker.pid)
        finally:
            stop(web)
            if worker:
                stop(worker)
        assert answers.count(202) == n, answers
        return {
            "n": n, "seconds": round(elapsed, 2), "per_second": round(n / elapsed, 1), "all_accepted_after_s": round(accepted, 2),
            "wordpress_calls_per_delivery": round((self.wordpress_requests() - wp_before) / n, 3),
            "ortto_calls_per_delivery": round((len(self.ortto.state.calls) - ortto_before) / n, 3),
            "php_cpu_s_per_1000": round(cpu * 1000 / n, 1),
            "other_cpu_s_per_1000": {name: round(seconds * 1000 / n, 1) for name, seconds in others.items()},
            "web_worker_peak_rss_mb": web_rss, "worker_peak_rss_mb": worker_rss,
        }

    def floor(self, n: int) -> dict:
        """Only the WordPress calls a new user needs (look-up, create with role, meta and tags), 4 at a time."""
        emails = [f"floor{n}-{i}-{secrets.token_hex(3)}@example.test" for i in range(n)]
        session = requests.Session()
        session.auth = (self.wordpress.admin_user, self.wordpress.app_password)
        base = self.wordpress.url + "/"

        def create(email: str) -> None:
            contact_id = secrets.token_hex(12)
            session.get(base, params={"rest_route": "/wpf-bridge/v1/users/lookup", "contact_id": contact_id,
                                      "email": email}, timeout=30).raise_for_status()
            for _ in range(5):  # a 5xx (an InnoDB deadlock between concurrent inserts) is worth a retry
                answer = session.post(base, params={"rest_route": "/wp/v2/users"}, timeout=30, json={
                    "username": email, "email": email, "password": secrets.token_urlsafe(15), "roles": ["customer"],
                    "first_name": "Bench", "last_name": "Floor",
                    "wpf_meta": {"ortto_contact_id": contact_id, "ortto_tags": [], "wpf_bridge_delivery": secrets.token_hex(16)},
                    "wpf_send_notification": False})
                if answer.status_code < 500:
                    break
                retries.append(answer.text[:200])
            answer.raise_for_status()

        retries: list[str] = []
        before, cpu_before = self.wordpress_requests(), self.php_cpu_seconds()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(create, emails))
        elapsed = time.monotonic() - started
        return {"n": n, "seconds": round(elapsed, 2), "per_second": round(n / elapsed, 1),
                "php_cpu_s_per_1000": round((self.php_cpu_seconds() - cpu_before) * 1000 / n, 1),
                "wordpress_calls_per_delivery": round((self.wordpress_requests() - before) / n, 3),
                "wordpress_5xx_retried": len(retries), "first_5xx": retries[:1]}

    def close(self) -> None:
        self.ortto.stop()
        self.wordpress.stop()
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            for name in self.databases:
                admin.execute(f"drop database if exists {name} with (force)")


def _stall(port: int) -> socket.socket:
    """A connection that sends a webhook's headers and one byte of a 100,000-byte body, then nothing."""
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
    return client


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.RequestException:
        return False


def wait_until(condition, timeout: float, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s")
        time.sleep(poll)


def cpu_seconds(pid: int) -> float:
    """CPU seconds a process and its children (living or reaped) have used so far."""
    ticks = 0
    for each in {pid, *children(pid)}:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a child that ended meanwhile: its time is in its parent's now
            continue
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU seconds of this process: the Ortto test server's threads and the webhook senders."""
    times = os.times()
    return times.user + times.system


def mariadb_cpu_seconds() -> float:
    """CPU seconds the machine's MariaDB server has used so far (WordPress's database)."""
    pid = subprocess.run(["pgrep", "-o", "mariadbd|mysqld"], capture_output=True, text=True).stdout.split()
    return cpu_seconds(int(pid[0])) if pid else 0.0


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out] or [pid]


def peak_rss(pid: int) -> float:
    """VmHWM: the most resident memory the process has had, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return round(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024, 1)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def parse_wrk(out: str) -> dict:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
        return round(float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)

    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests_per_second": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))),
            "p50_ms": ms(latency["50"]) if "50" in latency else None, "p99_ms": ms(latency["99"]) if "99" in latency else None,
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "errors": (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)}


BRIDGE = "wpf_bridge.web:create_app()"
INGEST_RUNS = [  # label, WSGI app, store, gunicorn worker class, stalled clients
    ("bare Flask 202", "bench.bare_app:app", "sqlite", "gevent", 0),
    ("bare Flask 202, sync", "bench.bare_app:app", "sqlite", "sync", 0),
    ("bridge, SQLite", BRIDGE, "sqlite", "gevent", 0),
    ("bridge, SQLite, sync", BRIDGE, "sqlite", "sync", 0),
    ("bridge, PostgreSQL", BRIDGE, "postgresql", "gevent", 0),
    ("bridge, PostgreSQL, sync", BRIDGE, "postgresql", "sync", 0),
    ("bridge, PG, 40 stalled", BRIDGE, "postgresql", "gevent", 40),
    ("bridge, PG, sync, 40 st.", BRIDGE, "postgresql", "sync", 40),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drain", type=int, nargs="*", default=[300, 3000], help="drain sizes (default: 300 3000)")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per ingest run")
    parser.add_argument("--no-ingest", action="store_true", help="the drains only")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "results.json"))
    args = parser.parse_args()

    bench = Bench(Path(tempfile.mkdtemp(prefix="wpf-bench-")))
    results: dict = {"machine": f"{os.cpu_count()} cores", "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "ingest": {}, "drain": []}
    try:
        for label, app, kind, workers, stalled in [] if args.no_ingest else INGEST_RUNS:
            print(f"ingest: {label} ...", flush=True)
            results["ingest"][label] = bench.ingest(label, app, bench.new_database(kind), args.seconds, workers, stalled)
        for n in args.drain:  # each on a fresh WordPress: a look-up costs more as the user table grows
            print(f"drain: {n} users by the floor script ...", flush=True)
            bench.fresh_wordpress()
            floor = bench.floor(n)
            print(f"drain: {n} adds through the bridge (SQLite) ...", flush=True)
            bench.fresh_wordpress()
            bridge = bench.drain(n, bench.new_database("sqlite"))
            print(f"drain: {n} adds queued first, then the worker (SQLite) ...", flush=True)
            bench.fresh_wordpress()
            results["drain"].append({"bridge": bridge, "queued": bench.drain(n, bench.new_database("sqlite"), True),
                                     "floor": floor})
    finally:
        bench.close()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwritten to {args.json}")


def table(results: dict) -> str:
    ceiling = results["ingest"].get("bare Flask 202", {}).get("requests_per_second")
    lines = ["", "Ingest (wrk, 16 connections, 2 gunicorn workers: gevent unless marked sync; 2 s timeout)",
             f"{'':24} {'req/s':>7} {'of bare':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7} {'RSS MB':>7}"]
    for label, r in results["ingest"].items():
        lines.append(f"{label:24} {r['requests_per_second']:7} {r['requests_per_second'] / ceiling:8.0%} "
                     f"{r['p50_ms']:7} {r['p99_ms']:7} {r['errors']:7} {r['web_worker_peak_rss_mb']:7}")
    lines += ["", "Drain (new users, real WordPress; floor: a look-up and a create per user, 4 at a time)",
              f"{'N':>5} {'bridge s':>9} {'floor s':>8} {'speed-up':>9} {'WP/deliv':>9} {'floor WP':>9} {'PHP CPU s/1000':>15} "
              f"{'floor CPU':>10} {'Ortto/deliv':>12} {'web RSS':>8} {'worker RSS':>11}"]
    for d in results["drain"]:
        f = d["floor"]
        for label, b in (("", d["bridge"]), (" (queued first)", d["queued"])):
            lines.append(f"{b['n']:5} {b['seconds']:9} {f['seconds']:8} {f['seconds'] / b['seconds']:8.1f}x "
                         f"{b['wordpress_calls_per_delivery']:9} {f['wordpress_calls_per_delivery']:9} "
                         f"{b['php_cpu_s_per_1000']:15} {f['php_cpu_s_per_1000']:10} {b['ortto_calls_per_delivery']:12} "
                         f"{b['web_worker_peak_rss_mb']:8} {b['worker_peak_rss_mb']:11}{label}")
            split = ", ".join(f"{name} {seconds}" for name, seconds in b.get("other_cpu_s_per_1000", {}).items())
            lines.append(f"{'':5} other CPU s/1000: {split}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
