"""Slow or stalled clients cannot stall the webhook endpoint (the real Procfile web process).

The web process is reached directly, without a buffering proxy in front. A client that sends its
headers and then trickles its body, or stops, must cost a connection and nothing more: valid
webhooks keep answering at once, and the stalled client is answered 408 and closed once its
body's time is up.
"""
from __future__ import annotations

import socket
import time

import requests
from conftest import unique_email
from waiting import wait_for

from wpf_bridge.web.bodies import BODY_SECONDS

SLOW_CLIENTS = 40
STALLED_BODY = (b"POST /?wpf_action=add HTTP/1.1\r\nHost: bridge.test\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n{")


def stall(url: str) -> socket.socket:
    """A client that sends a webhook's headers and one byte of its 100,000-byte body, then nothing."""
    host, port = url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)), timeout=BODY_SECONDS + 20)
    client.sendall(STALLED_BODY)
    return client


def test_forty_slow_clients_leave_valid_webhooks_answering_within_a_second(start_processes, env):
    procs = start_processes()
    key = env["WPF_ACCESS_KEY"].split(",")[0]
    stalled = [stall(procs.urls[n % len(procs.urls)]) for n in range(SLOW_CLIENTS)]
    stalled_at = time.monotonic()
    try:
        answers = []
        for n in range(10):  # each must answer within a second (requests raises Timeout otherwise)
            url = procs.urls[n % len(procs.urls)]
            answers.append(requests.post(url + "/", params={"wpf_action": "add", "access_key": key},
                                         json={"email": unique_email("quick")}, timeout=1).status_code)
        assert answers == [202] * 10

        answered = [client.recv(4096) for client in stalled]  # each is answered, then closed
        assert all(reply.startswith(b"HTTP/1.1 408 ") for reply in answered), {reply[:40] for reply in answered}
        assert time.monotonic() - stalled_at < BODY_SECONDS + 10
    finally:
        for client in stalled:
            client.close()
    wait_for(lambda: "body not received" in procs.output(), 10, "the web log to name the stalled bodies")
    assert "MonkeyPatchWarning" not in procs.output(), "gunicorn's master imported the app, or requests, before gevent"
