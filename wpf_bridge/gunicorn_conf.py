"""Gunicorn settings for the web process (``gunicorn -c python:wpf_bridge.gunicorn_conf``).

Settings are validated here, in the master, so a bad setting stops start-up with one line.
The access log leaves out the query string: it carries the access key.

gevent workers: the web process is often reached directly, without a proxy that buffers requests,
and a sync worker is held by one client for as long as that client takes to send its body (two
stalled clients stalled every webhook for 30 s). A gevent worker holds a greenlet per connection
instead (up to ``worker_connections``); headers must arrive within ``keepalive`` seconds, and
bodies within ``web.bodies.BODY_SECONDS``.
"""

import errno
import socket

from gunicorn.glogging import Logger

from wpf_bridge import logs
from wpf_bridge.terminal import say, settings_or_exit

_settings = settings_or_exit()


def _address_taken(bind: str) -> str:
    """Why the web process cannot listen on ``bind`` (host:port), or '': gunicorn would retry, then
    exit with a traceback."""
    host, _, port = bind.rpartition(":")
    with socket.socket(socket.AF_INET6 if host.startswith("[") else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host.strip("[]"), int(port)))
        except OSError as exc:
            return (
                "the port is in use by another program" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            )
    return ""


if _taken := _address_taken(_settings.bind):
    say(f"wpf-bridge: cannot listen on {_settings.bind}: {_taken}; set PORT (or WPF_BIND) to a free one", err=True)
    raise SystemExit(2)

bind = _settings.bind
workers = _settings.web_concurrency
worker_class = "gevent"
worker_connections = 1000
timeout = 30
graceful_timeout = 20
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
control_socket_disable = True  # several web processes may share a host


class _Logger(Logger):
    """Gunicorn's logs (the master's first line included) redacted and, if asked, JSON like ours."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        logs.install(_settings.secrets(), _settings.json_logs)


logger_class = _Logger
