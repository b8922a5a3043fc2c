"""What a gevent web worker runs at once must not wait on itself, hold other requests, or slip past
a limit (the real Procfile web process). A gevent worker serves many requests in one process, one
at a time, switching when one waits: a wait the hub cannot see (a lock file, a long loop in
SQLite) holds every request of the process, and a check made before a count lets requests that
arrive together all pass it. Found by the review of issue 18's fixes; each fails with the code
before them."""
from __future__ import annotations

import re
import socket
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
import requests
from conftest import unique_email
from waiting import wait_for

from wpf_bridge.types import FAILED
from wpf_bridge.web.console.auth import LOGIN_LIMIT

PASSWORD = "console-review-42"


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def webhook(url: str, key: str, timeout: float) -> int | str:
    """One valid webhook; its status, or what went wrong instead of an answer."""
    try:
        return requests.post(url + "/", params={"wpf_action": "add", "access_key": key},
                             json={"email": unique_email("review")}, timeout=timeout).status_code
    except requests.RequestException as exc:
        return type(exc).__name__


@pytest.mark.sqlite_only
def test_a_writer_outside_the_lock_file_does_not_freeze_a_gevent_worker(start_processes, env):
    """A webhook that holds the lock file waits (and yields) for SQLite's lock, held by a writer
    that does not take the lock file (the sqlite3 shell, a backup script); a second webhook of the
    same worker must then wait its turn, not call flock(2), which blocks the whole process and so
    the first webhook too, until gunicorn kills the worker 30 s later."""
    procs = start_processes(WEB_CONCURRENCY="1")
    procs.kill("worker")
    key = env["WPF_ACCESS_KEY"].split(",")[0]
    assert webhook(procs.url, key, 5) == 202

    outside = sqlite3.connect(env["DATABASE_URL"].removeprefix("sqlite:///"), isolation_level=None)
    outside.execute("begin immediate")
    with ThreadPoolExecutor(2) as pool:
        answers = [pool.submit(webhook, procs.url, key, 8) for _ in range(2)]
        time.sleep(1)  # the outside writer's one-second write, while both webhooks arrive
        outside.execute("rollback")
        outside.close()
        assert [answer.result() for answer in answers] == [202, 202]


def fail_many(store, count: int) -> None:
    at = time.time() - 600
    with store.database.transaction() as tx:
        for n in range(count):
            tx.execute("insert into deliveries (id, action, contact_id, email, status, result, created_at, updated_at,"
                       " retry_since, run_after) values (:id, 'add', :contact, :email, :status, 'WordPress down', :at,"
                       " :at, :at, :at)", {"id": uuid.uuid4().hex, "contact": f"0069{n:020d}",
                                           "email": f"p{n}@example.test", "status": FAILED, "at": at + n / 1000})


def test_a_bulk_replay_answers_at_once_and_its_worker_lets_webhooks_through(start_processes, env):
    """Replaying an outage's 30,000 failures is one quick request to the web process; a worker does
    it chunk by chunk, and webhooks still answer at once meanwhile."""
    import threading

    from wpf_bridge.settings import load_settings
    from wpf_bridge.worker.operators import OperatorWork

    procs = start_processes(WEB_CONCURRENCY="1", WPF_CONSOLE_PASSWORD=PASSWORD)
    procs.kill("worker")  # the replayed deliveries stay queued: only the replay runs, in this process
    key = env["WPF_ACCESS_KEY"].split(",")[0]
    fail_many(procs.store, 30_000)
    console = requests.Session()
    signed = console.post(procs.url + "/console/login", allow_redirects=False, timeout=5, data={
        "password": PASSWORD, "name": "Ann", "csrf_token": csrf_token(console.get(procs.url + "/console/login").text)})
    assert signed.status_code == 302
    token = csrf_token(console.get(procs.url + "/console/deliveries", timeout=10).text)
    asked = console.post(procs.url + "/console/replay", data={"csrf_token": token}, allow_redirects=False, timeout=5)
    assert asked.status_code == 302
    [action] = procs.store.operators.operator_actions()
    assert (action["matched"], action["done"], action["finished_at"]) == (30_000, 0, None)

    stopping = threading.Event()
    worker = threading.Thread(target=OperatorWork(load_settings(env), procs.store).run_until, args=(stopping,))
    worker.start()
    try:
        wait_for(lambda: procs.store.operators.operator_action(action["id"])["done"], 30, "the replay to begin")
        took = []
        for _ in range(3):
            begun = time.monotonic()
            took.append((webhook(procs.url, key, 30), round(time.monotonic() - begun, 1)))
        wait_for(lambda: procs.store.operators.operator_action(action["id"])["finished_at"], 120, "the replay to end")
    finally:
        stopping.set()
        worker.join(30)
    assert all(status == 202 and seconds < 1 for status, seconds in took), took
    assert procs.store.operators.operator_action(action["id"])["done"] == 30_000


def burst(url: str, path: str, bodies: list[bytes], cookie: str = "") -> list[bytes]:
    """POST each form body on a connection of its own, all connected first and then sent at once."""
    host, port = url.removeprefix("http://").split(":")
    clients = [socket.create_connection((host, int(port)), timeout=30) for _ in bodies]
    for client, body in zip(clients, bodies):
        client.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\n"
                       "Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    answers = []
    for client in clients:
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
        client.close()
        answers.append(b"".join(chunks))
    return answers


def test_a_burst_of_wrong_passwords_or_keys_gets_no_more_tries_than_the_limit(start_processes, env):
    """Each try is counted before it is judged: 200 wrong passwords sent together from one address
    had 10 to 17 checked against a limit of 5 (on PostgreSQL, where each query yields); so had
    wrong webhook keys against theirs."""
    procs = start_processes(WPF_CONSOLE_PASSWORD=PASSWORD, WPF_KEY_FAILURE_LIMIT="10")
    page = requests.get(procs.url + "/console/login", timeout=5)
    bodies = [urlencode({"password": f"guess-{n}", "name": "x", "csrf_token": csrf_token(page.text)}).encode()
              for n in range(200)]
    answers = burst(procs.url, "/console/login", bodies, f"wpf_console={page.cookies['wpf_console']}")
    checked = sum(b"Wrong password." in answer for answer in answers)
    assert checked + sum(b"Too many wrong passwords" in answer for answer in answers) == len(bodies)
    assert checked == LOGIN_LIMIT

    keys = [urlencode({"wpf_action": "add", "access_key": f"wrong-{n}", "email": "x@example.test"}).encode()
            for n in range(100)]
    statuses = [answer.split(b" ", 2)[1] for answer in burst(procs.url, "/", keys)]
    assert statuses.count(b"403") == 10 and statuses.count(b"429") == 90, statuses
