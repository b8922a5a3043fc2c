"""Signing in to the console: one password (``WPF_CONSOLE_PASSWORD``), compared in constant time,
at most ``LOGIN_LIMIT`` wrong tries a minute per client address, and a signed session cookie that
lasts ``WPF_CONSOLE_SESSION_HOURS`` and dies with a change of password."""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import time
from typing import Callable

from flask import Flask, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from ...settings import Settings
from ...store import Store
from ..addresses import client_key

LOGIN_LIMIT = 5  # wrong passwords a client may send per window
LOGIN_LIMIT_ALL = 30  # wrong passwords from all clients together per window (many addresses, one console)
EVERYONE = "console (all clients)"
LOGIN_WINDOW = 60.0  # seconds; the same window as wrong webhook keys, which share the table
log = logging.getLogger(__name__)


class _SessionInterface(SecureCookieSessionInterface):
    """The cookie is ``Secure`` when the console was reached over HTTPS (through trusted proxies too)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


def configure_sessions(app: Flask, settings: Settings) -> None:
    """Cookies signed with a key derived from ``WPF_SECRET_KEY``, so every web process and dyno
    accepts them, and expiring after the configured hours (checked on the server, from the
    signature's time, not only by the browser)."""
    from datetime import timedelta

    app.secret_key = _derive(settings.secret_keys[0], "console session")
    app.session_interface = _SessionInterface()
    app.config.update(SESSION_COOKIE_NAME="wpf_console", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_PATH="/console",
                      PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.console_session_seconds),
                      WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None)


def _derive(key: str, purpose: str) -> str:
    return hmac.new(key.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def _fingerprint(settings: Settings) -> str:
    """Which password a session was opened with: a new password ends every session. Keyed with
    ``WPF_SECRET_KEY``: the cookie is signed, not encrypted, and must not let whoever holds one
    test password guesses offline."""
    return _derive(settings.secret_keys[0], "console password " + (settings.console_password or ""))[:32]


def signed_in(settings: Settings) -> bool:
    started = session.get("at", 0)
    return (hmac.compare_digest(session.get("pw", ""), _fingerprint(settings))
            and time.time() - started < settings.console_session_seconds)


def operator() -> str:
    """Who did it, for the action log: the name given at sign-in and the address it came from."""
    return f"{session.get('who') or 'operator'} ({session.get('from', '?')})"


def login_required(settings: Settings) -> Callable:
    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not signed_in(settings):
                session.clear()
                return redirect(url_for("console.login", next=request.full_path if request.method == "GET" else None))
            return view(*args, **kwargs)
        return wrapped
    return decorate


def try_login(settings: Settings, store: Store, password: str, name: str) -> tuple[bool, str]:
    """Check a password; ``(True, "")`` opens a session, else ``(False, why)``."""
    client = "console " + client_key(request.remote_addr)
    wait = max(store.key_block(client, LOGIN_WINDOW, LOGIN_LIMIT),
               store.key_block(EVERYONE, LOGIN_WINDOW, LOGIN_LIMIT_ALL, total=True))
    if wait:
        log.warning("console sign-in refused from %s: too many wrong passwords", request.remote_addr)
        return False, f"Too many wrong passwords: try again in {math.ceil(wait)} s."
    if not hmac.compare_digest(password.encode(), (settings.console_password or "").encode()):
        store.key_failure(client, LOGIN_WINDOW)
        store.key_failure(EVERYONE, LOGIN_WINDOW, total=True)
        log.warning("console sign-in refused from %s: wrong password", request.remote_addr)
        return False, "Wrong password."
    session.clear()
    session.permanent = True
    session.update(pw=_fingerprint(settings), at=time.time(), who=_printable(name)[:60], **{"from": request.remote_addr})
    log.info("console sign-in by %s", operator())
    return True, ""


def _printable(text: str) -> str:
    return "".join(c for c in text.strip() if c.isprintable())
