"""``wpf-bridge import --tag`` on a big account (``make bench-import``): the scan and the queueing of
10,000 tagged people out of 50,000 in the Ortto test server, at ``ORTTO_RATE_LIMIT=10``, on SQLite
and on PostgreSQL; wall time and the import process's peak RSS. No worker runs (``--no-wait``).
Figures, not pass/fail.
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from ortto_server import OrttoServer  # noqa: E402

POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def run_import(env: dict[str, str], work: Path, tag: str) -> tuple[float, float, str]:
    """Seconds, peak RSS in MB and the last line printed."""
    subprocess.run([sys.executable, "-m", "wpf_bridge", "migrate"], cwd=work, env={**os.environ, **env}, check=True,
                   capture_output=True)  # as the release step would, before anything reads the store
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "wpf_bridge", "import", "--tag", tag, "--no-wait"], cwd=work,
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    assert run.returncode == 0, run.stderr
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024, run.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--tagged", type=int, default=10_000)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the Ortto test server's request lines
    ortto = OrttoServer().start()
    every = args.people // args.tagged
    for n in range(args.people):
        ortto.state.add_person({"str::email": f"person{n}@example.com", "str::first": f"P{n}"},
                               ["customer", "newsletter"] if n % every == 0 else ["newsletter"])
    base = {"WPF_ACCESS_KEY": secrets.token_hex(8), "WORDPRESS_URL": "http://127.0.0.1:9", "WORDPRESS_USER": "bench",
            "WORDPRESS_APP_PASSWORD": "x", "ORTTO_API_KEY": ortto.state.api_key, "ORTTO_API_URL": ortto.url,
            "WPF_SECRET_KEY": secrets.token_hex(16), "ORTTO_RATE_LIMIT": "10"}
    rows = []
    with tempfile.TemporaryDirectory() as work:
        rows.append(("SQLite", *run_import({**base, "DATABASE_URL": f"sqlite:///{work}/bench.db"}, Path(work), "customer")))
        name = "wpf_bench_" + secrets.token_hex(4)
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f"create database {name}")
        try:
            rows.append(("PostgreSQL", *run_import({**base, "DATABASE_URL": f"{POSTGRES}/{name}"}, Path(work), "customer")))
        finally:
            with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
                admin.execute(f"drop database {name} with (force)")
    ortto.stop()
    pages = -(-args.people // 500)
    print(f"\nimport --tag of {args.tagged:,} tagged among {args.people:,} people ({pages} pages of 500, "
          "ORTTO_RATE_LIMIT=10), scan and queue, no worker")
    print(f"{'store':12} {'seconds':>8} {'peak RSS MB':>12}  printed")
    for store, seconds, rss, line in rows:
        print(f"{store:12} {seconds:8.1f} {rss:12.1f}  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
