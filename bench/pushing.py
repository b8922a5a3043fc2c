"""WordPress -> Ortto (``make bench``, after the webhook figures): what the outbox costs a
registration, and how fast the worker drains registrations into Ortto. Figures, not pass/fail.

1. Registration overhead: ``wp_insert_user`` (with first name, last name and a watched meta key)
   timed inside PHP, N users at a time, with the outbox off and recording (new users, roles, the
   email, the names and the meta key), alternated so that the machine's noise falls on both.
2. Outbound drain: N users registered by PHP while no worker runs (they wait in the outbox), then
   ``wpf-bridge worker`` with new users and profile changes pushed: time from its start until every
   one is an Ortto person, linked (each user's later meta change pushed too, by person id); Ortto
   and WordPress calls per registration, counted at the servers.
"""
from __future__ import annotations

import argparse
import json
import logging
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from run import BIN, Bench, stop, wait_until

from wpf_bridge.store import Search, Store, migrate_store
from wpf_bridge.types import DONE, QUEUED, RETRYING, RUNNING

REGISTER = """
$n = {n}; $started = microtime(true);
for ($i = 0; $i < $n; $i++) {{
    $login = '{prefix}' . $i;
    wp_insert_user(array('user_login' => $login, 'user_email' => $login . '@example.test', 'user_pass' => 'Bench-Pass-1',
        'first_name' => 'Bench', 'last_name' => (string) $i, 'role' => 'subscriber'));
    update_user_meta(username_exists($login), 'company', 'Acme');
}}
echo json_encode((microtime(true) - $started) * 1000 / $n);
"""
WATCH = """update_site_option('wpf_bridge_watch', array('user' => 1, 'new' => true, 'roles' => true,
    'fields' => array('user_email'), 'meta' => array('first_name', 'last_name', 'company'))); wpf_bridge_outbox_install();"""


def register(bench: Bench, n: int) -> float:
    """Register ``n`` users in one PHP process; milliseconds per registration."""
    prefix = "bench" + secrets.token_hex(4) + "_"
    return float(bench.wordpress.php_eval(REGISTER.format(n=n, prefix=prefix)).strip())


def overhead(bench: Bench, n: int, rounds: int) -> dict:
    off, on = [], []
    for _ in range(rounds):
        bench.wordpress.php_eval("delete_site_option('wpf_bridge_watch');")
        off.append(register(bench, n))
        bench.wordpress.php_eval(WATCH)
        on.append(register(bench, n))
    bench.wordpress.php_eval("delete_site_option('wpf_bridge_watch'); global $wpdb;"
                             " $wpdb->query('DELETE FROM ' . wpf_bridge_outbox_table());")
    return {"n": n, "rounds": rounds, "off_ms": round(statistics.median(off), 2), "on_ms": round(statistics.median(on), 2),
            "extra_ms": round(statistics.median(b - a for a, b in zip(off, on)), 2)}


def drain(bench: Bench, n: int) -> dict:
    bench.fresh_wordpress()
    database_url = bench.new_database("sqlite")
    migrate_store(database_url)
    env = bench.env(database_url, WPF_PUSH_NEW_USERS="true", WPF_NEW_USER_TAGS="Registered", WPF_PUSH_PROFILE_CHANGES="true")
    bench.wordpress.php_eval(WATCH)
    for start in range(0, n, 500):
        register(bench, min(500, n - start))
    store = Store(database_url)
    wp_before, ortto_before = bench.wordpress_requests(), len(bench.ortto.state.calls)
    people_before = len(bench.ortto.state.people)
    worker = bench.start([str(BIN / "wpf-bridge"), "worker"], env, f"push-worker-{n}")
    started = time.monotonic()
    try:
        new_done = Search(action="push_new", status=DONE)
        waiting = Search(statuses=(QUEUED, RETRYING, RUNNING))
        wait_until(lambda: store.deliveries.count(new_done) >= n and not store.deliveries.count(waiting), 3600, poll=0.2)
        elapsed = time.monotonic() - started
    finally:
        stop(worker)
    calls = bench.ortto.state.calls[ortto_before:]
    changes = sum(store.deliveries.counts().values())
    return {"n": n, "changes": changes, "seconds": round(elapsed, 2), "per_second": round(n / elapsed, 1),
            "ortto_calls_per_change": round(len(calls) / changes, 3),
            "ortto_calls": {path: sum(1 for c in calls if c.path == path) for path in sorted({c.path for c in calls})},
            "wordpress_calls_per_user": round((bench.wordpress_requests() - wp_before) / n, 3),
            "people_created": len(bench.ortto.state.people) - people_before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drain", type=int, nargs="*", default=[3000])
    parser.add_argument("--register", type=int, default=200, help="users per timed registration round")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "pushing.json"))
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the Ortto test server's request lines
    bench = Bench(Path(tempfile.mkdtemp(prefix="wpf-bench-push-")))
    bench.ortto.state.declare("str:cm:company")
    try:
        print("outbox: registration time, off and recording ...", flush=True)
        results = {"registration": overhead(bench, args.register, 5), "drain": []}
        for n in args.drain:
            print(f"outbox: {n} registrations, then the worker ...", flush=True)
            results["drain"].append(drain(bench, n))
    finally:
        bench.close()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    r = results["registration"]
    print(f"\nRegistration by wp_insert_user (median of {r['rounds']} rounds of {r['n']}): outbox off {r['off_ms']} ms, "
          f"recording {r['on_ms']} ms, extra {r['extra_ms']} ms (target under 2 ms)")
    print(f"{'N':>6} {'changes':>8} {'drain s':>8} {'users/s':>7} {'Ortto/change':>13} {'WP/user':>8} "
          f"{'people made':>12}  Ortto calls")
    for d in results["drain"]:
        print(f"{d['n']:6} {d['changes']:8} {d['seconds']:8} {d['per_second']:7} {d['ortto_calls_per_change']:13} "
              f"{d['wordpress_calls_per_user']:8} {d['people_created']:12}  {d['ortto_calls']}")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
