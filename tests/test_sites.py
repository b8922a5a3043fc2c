"""What real WordPress sites answer besides WordPress itself: a redirect to HTTPS, a firewall's or
a host's HTML page, a certificate that does not verify. Each ends the way an operator needs:
retried when it may pass, failed at once with what to fix when it is configuration. A small
server stands in for the thing in front of WordPress; Ortto is the test server."""
from __future__ import annotations

import dataclasses
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from inprocess import Bridge, person

from wpf_bridge.clients.wordpress import WordPressClient, WordPressError
from wpf_bridge.types import FAILED, RETRYING

FIREWALL_PAGE = b"<html><head><title>Access Denied - Sucuri Website Firewall</title></head><body>Blocked</body></html>"
HOST_PAGE = b"<html><head><title>503 Service Temporarily Unavailable</title></head><body>nginx</body></html>"


class _FrontHandler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        server = self.server
        server.seen.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status, headers, body = server.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def front(tmp_path):
    """A server in front of WordPress that answers every request with ``front.answer``
    (status, headers, body), once ``front.start()`` (``tls=True``: HTTPS, a self-signed certificate)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FrontHandler)
    server.seen, server.answer = [], (200, {}, b"")
    server.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)

    def start(tls: bool = False) -> None:
        if tls:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                            "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
            server.socket = context.wrap_socket(server.socket, server_side=True)
            server.url = server.url.replace("http://", "https://")
        thread.start()

    server.start = start
    yield server
    if thread.is_alive():
        server.shutdown()
        thread.join(5)


def bridge_to(settings, url: str) -> Bridge:
    return Bridge(dataclasses.replace(settings, wordpress_url=url))


def test_a_redirect_to_https_fails_at_once_and_never_turns_a_post_into_a_get(settings, ortto, front):
    front.answer = (301, {"Location": "https://blog.example.com/?rest_route=/wp/v2/users"}, b"")
    front.start()
    client = WordPressClient(front.url, "admin", "app pass word")
    with pytest.raises(WordPressError, match="redirects its REST API to https://blog.example.com/.*set WORDPRESS_URL"):
        client.create_user({"username": "x", "email": "x@example.test", "password": "p" * 20})
    assert [method for method, _ in front.seen] == ["POST"], "not followed, so never resent as a GET"

    contact_id, _ = person(ortto)
    failed = bridge_to(settings, front.url).deliver("add", contact_id=contact_id)
    assert failed.status == FAILED and "set WORDPRESS_URL to the address it redirects to" in failed.result


def test_a_firewall_page_fails_at_once_naming_it(settings, ortto, front):
    front.answer = (403, {"Content-Type": "text/html; charset=utf-8"}, FIREWALL_PAGE)
    front.start()
    contact_id, _ = person(ortto)
    failed = bridge_to(settings, front.url).deliver("add", contact_id=contact_id)
    assert failed.status == FAILED
    assert "HTTP 403 (not JSON but text/html titled 'Access Denied - Sucuri Website Firewall'" in failed.result
    assert "allow its address" in failed.result


def test_a_hosts_503_page_is_retried(settings, ortto, front):
    front.answer = (503, {"Content-Type": "text/html", "Retry-After": "30"}, HOST_PAGE)
    front.start()
    contact_id, _ = person(ortto)
    waiting = bridge_to(settings, front.url).deliver("add", contact_id=contact_id)
    assert waiting.status == RETRYING
    assert "HTTP 503 (not JSON but text/html titled '503 Service Temporarily Unavailable'" in waiting.result
    assert waiting.run_after - waiting.updated_at >= 29, "the host's Retry-After is honoured"


def test_a_certificate_that_does_not_verify_fails_at_once_with_the_reason(settings, ortto, front):
    front.start(tls=True)
    contact_id, _ = person(ortto)
    failed = bridge_to(settings, front.url).deliver("add", contact_id=contact_id)
    assert failed.status == FAILED, "not retried for a day: a certificate does not fix itself"
    assert "TLS certificate does not verify (self-signed certificate" in failed.result
    assert front.seen == [], "nothing was sent over the unverified connection"


@pytest.fixture(scope="module")
def blog():
    """A real WordPress in a sub-folder (http://host/blog) with pretty permalinks, as many sites are."""
    from wordpress_site import WordPressSite

    from wpf_bridge import companion

    site = WordPressSite(companion.source(), folder="blog", permalinks="/%postname%/").start()
    yield site
    site.stop()


def test_wordpress_in_a_sub_folder_with_pretty_permalinks(settings, ortto, blog):
    from conftest import PASSWORD_FIELD
    from inprocess import can_log_in

    from wpf_bridge.check import run_checks
    from wpf_bridge.types import DONE

    assert blog.url.endswith("/blog") and blog.php_eval("echo get_option('permalink_structure');") == "/%postname%/"
    settings = dataclasses.replace(settings, wordpress_url=blog.url, wordpress_user=blog.admin_user,
                                   wordpress_app_password=blog.app_password)
    said = []
    run_checks(settings, said.append)
    assert not [line for line in said if line.startswith("[FAIL]")], said
    contact_id, email = person(ortto, **{"str::first": "Sub"})
    done = Bridge(settings).deliver("add", contact_id=contact_id, send_notification=True)
    assert done.status == DONE, done.result
    [user] = blog.users_with_email(email)
    assert can_log_in(blog, user["username"], ortto.people[contact_id][PASSWORD_FIELD])
    assert len(blog.emails_to(email)) == 1
    ortto.people[contact_id]["str::first"] = "Folder"
    assert Bridge(settings).deliver("update", contact_id=contact_id).status == DONE
    assert blog.user_by_email(email)["first_name"] == "Folder"
