"""Gunicorn settings for the web process (``gunicorn -c python:wpf_bridge.web.gunicorn_conf``).

Settings are validated here, in the master, so a bad setting stops start-up with one line.
The access log leaves out the query string: it carries the access key.
"""
import os

from gunicorn.glogging import Logger

from wpf_bridge import logs
from wpf_bridge.cli import settings_or_exit

_settings = settings_or_exit()

bind = _settings.bind
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
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
