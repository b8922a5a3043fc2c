"""The operator console: in a real browser (Debian's Chromium, driven by Playwright) against the
Procfile processes, the real WordPress and the Ortto test server; and its guards (sign-in,
sessions, CSRF, rate limit, no secret on any page) through Flask's test client."""
from __future__ import annotations

import re
import secrets
import shutil
import time
from pathlib import Path

import pytest
import requests
from conftest import PASSWORD_FIELD, run_sql, unique_email
from console_client import CONSOLE_PASSWORD, sign_in, token
from inprocess import Bridge, can_log_in
from waiting import wait_for

from wpf_bridge.settings import load_settings
from wpf_bridge.types import DONE, FAILED, QUEUED
from wpf_bridge.web import create_app
from wpf_bridge.worker.operators import OperatorWork

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not an empty one
    return path


def test_operator_finds_a_failed_person_replays_and_watches_it_done(start_processes, env, ortto, wordpress, page):
    from playwright.sync_api import expect

    procs = start_processes(WPF_CONSOLE_PASSWORD=CONSOLE_PASSWORD)
    key = env["WPF_ACCESS_KEY"].split(",")[0]
    email, missing_id = unique_email("late"), "0069" + secrets.token_hex(10)
    answer = requests.post(f"{procs.url}/?wpf_action=add&access_key={key}&send_notification=true",
                           json={"contact_id": missing_id, "email": email})
    delivery_id = answer.json()["delivery_id"]
    wait_for(lambda: procs.store.deliveries.get(delivery_id).status == FAILED, 30, "the delivery to fail: Ortto has no such contact")

    page.goto(f"{procs.url}/console/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("Wrong password.")

    page.fill("input[name=name]", "Ann")
    page.fill("input[name=password]", CONSOLE_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#count-failed")).to_have_text(re.compile(r"[1-9]"))
    expect(page.locator("#check")).to_contain_text("companion plugin", timeout=30_000)
    expect(page.locator("#workers")).to_contain_text("1 worker process alive" if len(procs.names["worker"]) == 1
                                                     else "2 worker processes alive")
    screenshot(page, "console-overview")

    page.click("text=Deliveries")
    page.fill("input[name=q]", email.upper().split("@")[0])  # part of the email, another case
    page.click("button:has-text('Filter')")
    row = page.locator(f"tr.delivery[data-id='{delivery_id}']")
    expect(row).to_contain_text("failed")
    expect(page.locator("tr.delivery")).to_have_count(1)
    row.get_by_title("this person's story").first.click()  # the person's whole story, one click away
    expect(page.locator("#story tr.delivery")).to_have_count(1)
    expect(page.locator("#who")).to_contain_text(email.lower())
    page.go_back()
    row.locator("td").first.locator("a").click()
    expect(page.locator("#status")).to_have_text("failed")
    expect(page.locator("#outcome")).to_contain_text(f"Ortto has no contact with id {missing_id}")
    expect(page.locator("#timeline")).to_contain_text("Ortto POST /v1/person/get-by-ids 200")
    screenshot(page, "console-failed-delivery")

    delivery_page = page.url

    ortto.add_person({"str::email": email, "str::first": "Late", "str::last": "Comer"}, [], person_id=missing_id)
    page.click("text=Overview")
    expect(page.locator("#failed-day")).to_have_text("1")
    expect(page.locator("#count-failed")).to_have_text("1")
    page.goto(delivery_page)
    page.click("#preview-replay")  # what would a replay do now? A worker asks Ortto and WordPress
    expect(page.locator("input[name=q]")).to_have_value(missing_id)  # asked with the delivery's own parameters
    expect(page.locator("input[name=notify]")).to_be_checked()
    lines = page.locator("#preview-lines")
    expect(lines).to_contain_text(f"would create a user: username '{email}'", timeout=30_000)
    expect(lines).to_contain_text("first_name: 'Late'")
    expect(lines).to_contain_text(f"password: generated, and sent to Ortto's {PASSWORD_FIELD}")
    expect(lines).to_contain_text("welcome email: sent")
    screenshot(page, "console-preview")
    assert wordpress.user_by_email(email) is None, "a preview creates nobody"
    page.goto(delivery_page)
    page.click("#replay")
    expect(page.locator("#status")).to_have_text("done", timeout=30_000)  # the page refreshes itself
    expect(page.locator("#timeline")).to_contain_text("replayed by Ann")
    screenshot(page, "console-replayed-delivery")

    page.click("text=Overview")
    expect(page.locator("#failed-day")).to_have_text("0")  # as the failed tile: done now, since its replay
    expect(page.locator("#count-failed")).to_have_text("0")
    for chart in ("#chart-1h-outcomes", "#chart-1h-latency", "#chart-24h-outcomes", "#chart-24h-latency",
                  "#chart-7d-outcomes", "#chart-7d-latency"):
        expect(page.locator(chart)).to_be_visible()
        assert page.locator(chart).bounding_box()["height"] > 50, "drawn, not collapsed"
    expect(page.locator("#chart-1h-outcomes rect:not(.slot)")).not_to_have_count(0)  # its bar, failed or done (figures are kept 10 s)
    screenshot(page, "console-overview-charts")
    user = wordpress.user_by_email(email)
    assert can_log_in(wordpress, user["username"], ortto.people[missing_id][PASSWORD_FIELD])
    assert len(wordpress.emails_to(email)) == 1
    page.click("text=Operator actions")
    expect(page.locator("table")).to_contain_text(f"replay delivery {delivery_id}")
    expect(page.locator("table")).to_contain_text("Ann (127.0.0.1)")
    html = page.content()
    for secret in load_settings(env).secrets() + [ortto.people[missing_id][PASSWORD_FIELD]]:
        assert secret not in html


def test_bulk_replay_shows_the_count_asks_and_reports_progress(start_processes, env, ortto, wordpress, page):
    from playwright.sync_api import expect

    procs = start_processes(WPF_CONSOLE_PASSWORD=CONSOLE_PASSWORD)
    key = env["WPF_ACCESS_KEY"].split(",")[0]
    people = [("0069" + secrets.token_hex(10), unique_email("bulk")) for _ in range(3)]
    ids = [requests.post(f"{procs.url}/?wpf_action=add&access_key={key}", json={"contact_id": cid, "email": email}
                         ).json()["delivery_id"] for cid, email in people]
    wait_for(lambda: all(procs.store.deliveries.get(i).status == FAILED for i in ids), 30, "the three to fail")

    page.goto(f"{procs.url}/console/login")
    page.fill("input[name=password]", CONSOLE_PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{procs.url}/console/deliveries?status=failed&q=bulk-")
    page.click("#replay-matching")
    expect(page.locator("#replay-count")).to_have_text("3")
    for cid, email in people:
        ortto.add_person({"str::email": email}, [], person_id=cid)
    page.click("#confirm")
    expect(page.locator(".progress-text")).to_have_text("3 of 3 replayed (finished)")
    procs.wait_until_applied(ids)
    assert all(wordpress.user_by_email(email) for _, email in people)
    page.goto(f"{procs.url}/console/actions")
    expect(page.locator("table")).to_contain_text("replay every failed or retrying delivery matching status='failed', q='bulk-'")


def test_wordpress_down_shows_who_waits_and_why_then_one_replay_once_it_is_back(start_processes, env, ortto, wordpress,
                                                                                page):
    from playwright.sync_api import expect

    procs = start_processes(WPF_CONSOLE_PASSWORD=CONSOLE_PASSWORD)
    key = env["WPF_ACCESS_KEY"].split(",")[0]
    people = {}
    for _ in range(3):
        email = unique_email("outage")
        people[ortto.add_person({"str::email": email, "str::first": "Out"}, [])] = email
    wordpress.kill_server()
    try:
        ids = [requests.post(f"{procs.url}/?wpf_action=add&access_key={key}&send_notification=true",
                             json={"contact_id": cid}).json()["delivery_id"] for cid in people]
        wait_for(lambda: all(procs.store.deliveries.get(i).status == "retrying" for i in ids), 30, "the three to wait for WordPress")
        # hours into an outage, the next retry is an hour away: the operator does not want to wait for it
        run_sql(procs.store, "update deliveries set run_after = run_after + 3600 where status = 'retrying'")

        page.goto(f"{procs.url}/console/login")
        page.fill("input[name=password]", CONSOLE_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("#count-retrying")).to_have_text("3")
        page.goto(f"{procs.url}/console/deliveries?status=retrying")
        rows = page.locator("tr.delivery")
        expect(rows).to_have_count(3)
        for n in range(3):
            expect(rows.nth(n)).to_contain_text(re.compile(r"WordPress cannot be reached: the connection was refused .*\s+\(next try in \d+ min\)"))  # one countdown
            expect(rows.nth(n)).not_to_contain_text("retry in")
        screenshot(page, "console-wordpress-down")
    finally:
        wordpress.start_server()
    page.click("#replay-matching")
    expect(page.locator("#replay-count")).to_have_text("3")
    page.click("#confirm")
    expect(page.locator(".progress-text")).to_have_text("3 of 3 replayed (finished)")
    page.goto(f"{procs.url}/console/deliveries?status=done")
    expect(page.locator("tr.delivery")).to_have_count(3, timeout=30_000)  # the list refreshes itself
    assert all(len(wordpress.emails_to(email)) == 1 for email in people.values())


def test_sign_in_and_out_over_https(env, tmp_path, browser):
    """Over HTTPS Flask-WTF wants the form's Referer: the console's referrer policy must send it,
    and the cookie must be Secure. Gunicorn serves TLS itself here (a self-signed certificate)."""
    import subprocess

    from playwright.sync_api import expect
    from procfile import Processes
    from test_processes import answers

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    procs = Processes({**env, "WPF_CONSOLE_PASSWORD": CONSOLE_PASSWORD,
                       "GUNICORN_CMD_ARGS": f"--certfile={tmp_path / 'cert.pem'} --keyfile={tmp_path / 'key.pem'}"}, tmp_path)
    url = procs.url.replace("http://", "https://")
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    try:
        wait_for(lambda: answers(url + "/health", str(tmp_path / "cert.pem")), 30, "the web process to answer over HTTPS")
        page.goto(f"{url}/console/login?next=/console/refused")
        page.fill("input[name=name]", "Tls")
        page.fill("input[name=password]", CONSOLE_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Refused webhooks")
        [cookie] = [c for c in context.cookies() if c["name"] == "wpf_console"]
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        page.click("text=Sign out")
        expect(page).to_have_url(re.compile(r"/console/login$"))
        page.goto(f"{url}/console/")
        expect(page).to_have_url(re.compile(r"/console/login"))
    finally:
        context.close()
        procs.stop()


# The guards, through Flask's test client against the real store, WordPress and Ortto test server.

def test_console_is_off_without_a_password(settings):
    client = create_app(settings).test_client()
    assert client.get("/console/").status_code == 404
    assert client.get("/console/login").status_code == 404


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_it(client):
    assert client.get("/console/deliveries").status_code == 302
    answer = sign_in(client)
    assert answer.status_code == 302
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over HTTPS it is Secure (next test)
    assert client.get("/console/deliveries").status_code == 200
    client.post("/console/logout", data={"csrf_token": token(client, "/console/")})
    assert client.get("/console/deliveries").status_code == 302


def test_cookie_is_secure_over_https(client):
    client.get("/console/login", base_url="https://bridge.example")
    tok = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/login", base_url="https://bridge.example").text)
    answer = client.post("/console/login", base_url="https://bridge.example", headers={"Referer": "https://bridge.example/"},
                         data={"password": CONSOLE_PASSWORD, "csrf_token": tok.group(1)})
    assert answer.status_code == 302 and "Secure" in answer.headers["Set-Cookie"]


def test_sign_in_without_csrf_token_is_refused(client):
    client.get("/console/login")
    answer = client.post("/console/login", data={"password": CONSOLE_PASSWORD})
    assert answer.status_code == 400 and "CSRF" in answer.text
    assert client.get("/console/deliveries").status_code == 302


def test_replay_without_csrf_token_is_refused_and_changes_nothing(client, console_settings, ortto):
    bridge = Bridge(console_settings)
    failed = bridge.deliver("add", contact_id="0069" + secrets.token_hex(10))
    assert failed.status == FAILED
    sign_in(client)
    for data in ({}, {"csrf_token": "forged"}):
        answer = client.post(f"/console/deliveries/{failed.id}/replay", data=data)
        assert answer.status_code == 400 and "CSRF" in answer.text
    assert bridge.store.deliveries.get(failed.id).status == FAILED
    assert bridge.store.operators.operator_actions() == []
    answer = client.post(f"/console/deliveries/{failed.id}/replay", data={"csrf_token": token(client, "/console/")})
    assert answer.status_code == 302 and bridge.store.deliveries.get(failed.id).status == QUEUED


def copy_of_session(client, settings):
    """Another web process, and another browser holding a copy of ``client``'s console cookie."""
    other = create_app(settings).test_client()
    other.set_cookie("wpf_console", client.get_cookie("wpf_console", path="/console").value, path="/console")
    return other


def test_sign_out_ends_every_copy_of_the_session(client, console_settings):
    sign_in(client)
    copy = copy_of_session(client, console_settings)
    assert copy.get("/console/").status_code == 200, "every web process accepts the session"
    client.post("/console/logout", data={"csrf_token": token(client, "/console/")})
    assert client.get("/console/").status_code == 302
    answer = copy.get("/console/deliveries")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/console/login")


def test_the_console_says_so_when_the_store_is_down_on_its_error_pages_too(client, monkeypatch):
    from wpf_bridge.store import StoreUnavailable
    from wpf_bridge.store.sessions import Sessions

    def down(*args):
        raise StoreUnavailable("delivery store unavailable: disk I/O error")

    sign_in(client)
    monkeypatch.setattr(Sessions, "find", down)  # the session itself cannot be read
    answer = client.get("/console/")
    assert answer.status_code == 503 and "cannot be read now" in answer.text
    expired = client.post("/console/logout", data={"csrf_token": "expired"})  # the CSRF page asks who is signed in too
    assert expired.status_code == 400 and "CSRF check failed" in expired.text


def test_session_expires_after_the_configured_hours_and_with_a_new_password(client, console_settings, env, monkeypatch):
    sign_in(client)
    copy = copy_of_session(client, console_settings)
    start, hours = time.time(), console_settings.console_session_seconds
    monkeypatch.setattr(time, "time", lambda: start + hours * 0.6)
    assert copy.get("/console/").status_code == 200  # the answer signs the cookie anew: its age no longer ends it
    monkeypatch.setattr(time, "time", lambda: start + hours + 1)
    assert copy.get("/console/").status_code == 302 and client.get("/console/").status_code == 302
    monkeypatch.undo()

    sign_in(client)
    copy = copy_of_session(client, load_settings({**env, "WPF_CONSOLE_PASSWORD": "another-password-42"}))
    assert copy.get("/console/").status_code == 302, "a session opened with the old password ends with it"


def test_wrong_passwords_are_limited_per_client_and_logged(client, caplog):
    for _ in range(5):
        assert "Wrong password." in sign_in(client, "wrong-password-1").text
    answer = sign_in(client)  # the right one, too late
    assert answer.status_code == 401 and "Too many wrong passwords" in answer.text
    assert client.get("/console/").status_code == 302
    assert caplog.text.count("console sign-in refused from 127.0.0.1") == 6
    assert "wrong-password-1" not in caplog.text and CONSOLE_PASSWORD not in caplog.text


def test_no_page_shows_a_secret(client, console_settings, env, ortto, wordpress):
    bridge = Bridge(console_settings)
    person_id = ortto.add_person({"str::email": unique_email("shown"), "str::first": "Shown"}, [])
    done = bridge.deliver("add", contact_id=person_id, send_notification=True)
    assert done.status == DONE
    password = ortto.people[person_id][PASSWORD_FIELD]
    key = console_settings.access_keys[0]
    client.post(f"/?wpf_action=add&access_key={key}x&email=x@example.com")  # refused: wrong key
    client.post(f"/?wpf_action=nope&access_key={key}&email=x@example.com")  # refused: unknown action
    client.application.extensions["wpf_bridge"]["refusals"].flush()  # written once a second otherwise
    sign_in(client)
    pages = ["/console/", "/console/?partial=1", "/console/check", f"/console/deliveries/{done.id}",
             "/console/deliveries", "/console/deliveries?status=failed&partial=1", "/console/refused",
             "/console/actions", "/console/replay"]
    client.get("/console/check")  # asks a worker for the set-up check
    assert OperatorWork(console_settings, bridge.store).run_once()
    texts = {path: client.get(path).text for path in pages}
    for path, text in texts.items():
        for secret in [*console_settings.secrets(), password, CONSOLE_PASSWORD]:
            assert secret not in text, f"{path} shows a secret"
    assert "access_key: wrong" in texts["/console/refused"] and "wpf_action: unknown action" in texts["/console/refused"]
    assert "127.0.0.1" in texts["/console/refused"]
    assert "wpf_action=add&amp;role=customer" in texts["/console/"]  # the first role a webhook may grant
    assert "Return Password" in texts["/console/check"]
    assert f"user-edit.php?user_id={done.user_id}" in texts[f"/console/deliveries/{done.id}"]
    assert "WordPress GET /wpf-bridge/v1/users/lookup 200" in texts[f"/console/deliveries/{done.id}"]
    assert "WordPress POST /wp/v2/users 201" in texts[f"/console/deliveries/{done.id}"]


def test_pages_forbid_framing_and_inline_script(client):
    answer = client.get("/console/login")
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Cache-Control"] == "no-store"


def test_filters_search_and_pages(client, console_settings):
    bridge = Bridge(console_settings)
    for n in range(55):
        bridge.store.ingest.add("update", f"c{n:03}", f"person{n:03}@example.com", None, False)
    bridge.store.ingest.add("update_tags", "other", "someone@example.com", None, False)
    sign_in(client)
    first = client.get("/console/deliveries?action=update&partial=1").text
    assert first.count('class="delivery"') == 50 and "older" in first
    second = client.get("/console/deliveries?action=update&page=1&partial=1").text
    assert second.count('class="delivery"') == 5 and "newer" in second
    assert client.get("/console/deliveries?q=PERSON01&partial=1").text.count('class="delivery"') == 10
    assert client.get("/console/deliveries?q=c007&partial=1").text.count('class="delivery"') == 1
    assert client.get("/console/deliveries?q=%25&partial=1").text.count('class="delivery"') == 0  # % is a character
    odd = client.get("/console/deliveries?status=weird&since=yesterday")
    assert odd.status_code == 200 and "unknown status" in odd.text and "is not a date and time" in odd.text
    future = client.get("/console/deliveries?since=2999-01-01T00:00&partial=1").text
    assert "No delivery matches." in future


def test_a_hanging_wordpress_never_holds_a_console_request(env):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers: each check request would wait 30 s
    try:
        port = silent.getsockname()[1]
        client = create_app(load_settings({**env, "WPF_CONSOLE_PASSWORD": CONSOLE_PASSWORD,
                                           "WORDPRESS_URL": f"http://127.0.0.1:{port}"})).test_client()
        sign_in(client)
        for path in ("/console/", "/console/check", "/console/check"):
            assert "Checking WordPress and Ortto…" in client.get(path).text
    finally:
        silent.close()


def test_neither_the_cookie_nor_the_store_lets_its_reader_test_passwords_offline(client):
    import hashlib
    import hmac

    sign_in(client)
    app = client.application
    session = app.session_interface.get_signing_serializer(app).loads(client.get_cookie("wpf_console", path="/console").value)
    assert set(session) <= {"sid", "csrf_token", "_permanent"}, "the cookie holds an id, nothing about the password"
    [row] = app.extensions["wpf_bridge"]["store"].database.query("select * from console_sessions")
    keyed_by_password = hmac.new(CONSOLE_PASSWORD.encode(), b"console password", hashlib.sha256).hexdigest()[:32]
    assert row["password"] and row["password"] != keyed_by_password and CONSOLE_PASSWORD not in str(row)
    assert row["id"] != session["sid"], "the store holds a hash of the id, not one to sign in with"


def guess_from_many_addresses(client) -> None:
    """As many wrong passwords as all clients together may send in a minute, none over its own limit."""
    from wpf_bridge.web.console.auth import LOGIN_LIMIT, LOGIN_LIMIT_ALL

    for n in range(LOGIN_LIMIT_ALL):
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{n // (LOGIN_LIMIT - 1)}"
        assert "Wrong password." in sign_in(client, "wrong-password-1").text
    client.environ_base["REMOTE_ADDR"] = "192.0.2.200"


def test_wrong_passwords_from_many_addresses_close_the_console_for_the_minute(client):
    guess_from_many_addresses(client)
    assert "Too many wrong passwords" in sign_in(client).text


def test_wrong_keys_from_more_addresses_than_are_counted_do_not_reopen_the_console(client, monkeypatch):
    from wpf_bridge.store import limits as store_module

    monkeypatch.setattr(store_module, "MAX_KEY_CLIENTS", 50)
    guess_from_many_addresses(client)
    store = client.application.extensions["wpf_bridge"]["store"]
    for n in range(60):  # wrong webhook keys: the oldest per-address counts are dropped
        store.limits.key_failure(f"203.0.113.{n}", 60)
    assert "Too many wrong passwords" in sign_in(client).text


def test_sign_in_goes_back_only_to_a_console_page(client):
    for target, expected in (("/console/refused", "/console/refused"), ("//evil.example/x", "/console/"),
                             ("/console/\r\nSet-Cookie:%20x=1", "/console/"), ("https://evil.example/", "/console/"),
                             ("/console/..\\evil", "/console/")):
        client.get("/console/login")
        answer = client.post(f"/console/login?next={target}",
                             data={"password": CONSOLE_PASSWORD, "csrf_token": token(client)})
        assert answer.status_code == 302 and answer.headers["Location"] == expected, target


def test_bulk_replay_keeps_the_status_filter(console_settings, client):
    bridge = Bridge(console_settings)
    failed = bridge.deliver("add", contact_id="0069" + secrets.token_hex(10))
    waiting = bridge.store.ingest.add("update", "c-wait", "wait@example.com", None, False)[0]
    run_sql(bridge.store, "update deliveries set status = 'retrying' where id = :id", id=waiting.id)
    sign_in(client)
    for status, replayed in (("done", set()), ("failed", {failed.id})):
        answer = client.post("/console/replay", data={"status": status, "csrf_token": token(client, "/console/")})
        action_id = answer.headers["Location"].split("?")[0].rsplit("/", 1)[1]
        assert OperatorWork(console_settings, bridge.store).run_once(), "a worker does the replay"
        found = bridge.store.operators.operator_action(action_id)
        assert (found["matched"], found["done"]) == (len(replayed), len(replayed))
        assert {d.id for d in bridge.store.deliveries.find(status=QUEUED)} == replayed
    assert bridge.store.deliveries.get(waiting.id).status == "retrying"


def test_overview_charts_count_each_bar_by_outcome_and_time_to_applied(client, console_settings):
    """The last hour (a bar a minute), 24 hours and 7 days as SVG drawn by the web process:
    deliveries by what became of them, and the median and 95th percentile from arrival to applied."""
    from wpf_bridge.store import Store
    from wpf_bridge.web.console import charts

    store = Store(console_settings.database_url)
    this_minute = time.time() // 60 * 60 + 0.5  # in this minute's, this hour's and these 6 hours' bars
    for status, at, took in [("done", this_minute, 2.0), ("done", this_minute, 4.0), ("skipped", this_minute, 6.0),
                             ("failed", this_minute, 1.0), ("queued", this_minute, 0.0),
                             ("done", this_minute - 86400 - 1800, 30.0)]:  # yesterday: on the week's chart only
        delivery = store.ingest.add("update", secrets.token_hex(6), None, None, False)[0]
        run_sql(store, "update deliveries set status = :status, created_at = :at, updated_at = :done where id = :id",
                status=status, at=at, done=at + took, id=delivery.id)
    charts._kept.clear()  # what another test's page kept
    sign_in(client)
    page = client.get("/console/").text
    for chart in ("1h-outcomes", "1h-latency", "24h-outcomes", "24h-latency", "7d-outcomes", "7d-latency"):
        assert f'<svg id="chart-{chart}"' in page
    assert "per minute" in page and "per hour" in page and "per 6 hours" in page
    assert page.count("2 done, 1 skipped, 1 failed, 1 waiting") == 3, "this minute's bar, this hour's, these 6 hours'"
    assert page.count("median 4 s, 95th percentile 5.8 s") == 6  # 2, 4 and 6 s: the bar's two points, on 3 charts
    assert page.count("1 done, 0 skipped, 0 failed, 0 waiting") == 1 and page.count("median 30 s") == 2  # yesterday
    assert page.count('<circle class="p50"') == page.count('<circle class="p95"') == 4, "a lone bar shows both"
    assert page.count('<g class="bar">') == 60 + 24 + 28
    assert page.count('<rect class="slot"') == 60 + 24 + 28, "each bar, an empty one too, has a shape to hover"
    assert page.count(": nothing arrived</title>") == 60 + 24 + 28 - 4, "an empty bar says so on hover"
