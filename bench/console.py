"""How fast the console's pages and ``/metrics`` answer on a big store (``make bench-console``).

Fills a store with N deliveries (a week of arrivals: 90% done, 5% failed, the rest waiting or
retrying, each with two history steps), then times each page through Flask's test client, signed
in (the overview with its charts' week of figures read anew, and kept): the median of 5 requests, on SQLite and on PostgreSQL. Figures, not pass/fail.
"""
from __future__ import annotations

import argparse
import re
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import POSTGRES  # noqa: E402
from wpf_bridge.settings import load_settings  # noqa: E402
from wpf_bridge.store import Store, migrate_store  # noqa: E402
from wpf_bridge.web import create_app  # noqa: E402
from wpf_bridge.web.console import charts  # noqa: E402

PASSWORD = "bench-console-password"
TOKEN = "bench-metrics-token-0123"


def fill(store: Store, count: int) -> str:
    """``count`` deliveries and two attempts each, in chunks; returns one email in the middle."""
    now = time.time()
    statuses = ["done"] * 18 + ["failed", "retrying"]
    chunk = 5000
    for start in range(0, count, chunk):
        with store.database.transaction() as tx:
            for n in range(start, min(count, start + chunk)):
                at = now - 7 * 86400 * (count - n) / count
                row = {"id": uuid.uuid4().hex, "action": ("add", "update", "update_tags")[n % 3],
                       "contact_id": f"{n:024x}", "email": f"person{n}@example.com", "status": statuses[n % 20],
                       "at": at}
                tx.execute("insert into deliveries (id, action, contact_id, email, role, send_notification, status,"
                           " attempts, result, created_at, updated_at, retry_since, run_after) values (:id, :action,"
                           " :contact_id, :email, null, 0, :status, 1, 'created user 1', :at, :at, :at, :at)", row)
                for step in range(2):
                    tx.execute("insert into attempts (delivery_id, at, call, status, code, message) values"
                               " (:id, :at, 'add', :status, '', 'created user 1')", {**row, "at": at + step})
    return f"person{count // 2}@example.com"


def timed(client, path: str, headers: dict | None = None, before=lambda: None) -> float:
    times = []
    for _ in range(5):
        before()
        started = time.perf_counter()
        answer = client.get(path, headers=headers or {})
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(times) * 1000


def measure(database_url: str, count: int) -> dict[str, float]:
    migrate_store(database_url)
    store = Store(database_url)
    started = time.perf_counter()
    email = fill(store, count)
    print(f"  filled {count} deliveries in {time.perf_counter() - started:.1f} s", flush=True)
    settings = load_settings({
        "WPF_ACCESS_KEY": secrets.token_hex(8), "WORDPRESS_URL": "http://127.0.0.1:9", "WORDPRESS_USER": "bench",
        "WORDPRESS_APP_PASSWORD": "x", "ORTTO_API_KEY": "x" * 16, "ORTTO_API_URL": "http://127.0.0.1:9",
        "DATABASE_URL": database_url, "WPF_SECRET_KEY": secrets.token_hex(16), "WPF_CONSOLE_PASSWORD": PASSWORD,
        "WPF_METRICS_TOKEN": TOKEN})
    client = create_app(settings).test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/login").text).group(1)
    client.post("/console/login", data={"password": PASSWORD, "csrf_token": token})
    return {
        "overview (live part)": timed(client, "/console/?partial=1"),
        "overview, charts read": timed(client, "/console/", before=charts._kept.clear),
        "overview, charts kept (10 s)": timed(client, "/console/"),
        "a person's story": timed(client, f"/console/person?q={email}"),
        "deliveries, first page": timed(client, "/console/deliveries?partial=1"),
        "deliveries, page 100": timed(client, "/console/deliveries?page=100&partial=1"),
        "status failed + action add": timed(client, "/console/deliveries?status=failed&action=add&partial=1"),
        "search part of an email": timed(client, f"/console/deliveries?q={email.split('@')[0]}&partial=1"),
        "search a contact id": timed(client, f"/console/deliveries?q={count // 3:024x}&partial=1"),
        "one delivery": timed(client, "/console/deliveries/" + store.deliveries.find(limit=1)[0].id),
        "/metrics": timed(client, "/metrics", {"Authorization": f"Bearer {TOKEN}"}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=100_000)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        print("SQLite:", flush=True)
        results["SQLite"] = measure(f"sqlite:///{work}/bench.db", args.deliveries)
    name = "wpf_bench_" + secrets.token_hex(4)
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f"create database {name}")
    try:
        print("PostgreSQL:", flush=True)
        results["PostgreSQL"] = measure(f"{POSTGRES}/{name}", args.deliveries)
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f"drop database {name} with (force)")
    print(f"\nmedian answer time, ms, with {args.deliveries:,} deliveries in the store")
    print(f"{'page':32} {'SQLite':>10} {'PostgreSQL':>12}")
    for page in results["SQLite"]:
        print(f"{page:32} {results['SQLite'][page]:10.1f} {results['PostgreSQL'][page]:12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
