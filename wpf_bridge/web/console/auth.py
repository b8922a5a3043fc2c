"""Signing in to the console: one password (``WPF_CONSOLE_PASSWORD``), compared in constant time,
at most ``LOGIN_LIMIT`` wrong tries a minute per client address, and a session recorded in the
store (its id in a signed cookie) that lasts ``WPF_CONSOLE_SESSION_HOURS`` and ends, for every
copy of the cookie, with sign-out or a change of password."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
from collections.abc import Callable

from flask import Flask, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from ...settings import Settings
from ...store import Store, StoreUnavailable
from ...store.sessions import ConsoleSession
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
    """Cookies signed with a key derived from ``WPF_SECRET_KEY``, holding the id of a session the
    store records (``signed_in`` checks it), and dropped by the browser after the configured hours."""
    from datetime import timedelta

    app.secret_key = _derive(settings.secret_keys[0], "console session")
    app.session_interface = _SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="wpf_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/console",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.console_session_seconds),
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,
    )


def _derive(key: str, purpose: str) -> str:
    return hmac.new(key.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def _fingerprint(settings: Settings) -> str:
    """Which password a session was opened with: a new password ends every session. Keyed with
    ``WPF_SECRET_KEY``, so whoever reads the store cannot test password guesses offline."""
    return _derive(settings.secret_keys[0], "console password " + (settings.console_password or ""))[:32]


def _current(settings: Settings, store: Store) -> ConsoleSession | None:
    """The live session this request's cookie names (looked up once a request): recorded, not
    expired, and opened with today's password."""
    if "console_session" not in g:
        found = store.sessions.find(session["sid"]) if session.get("sid") else None
        g.console_session = found if found and hmac.compare_digest(found.password, _fingerprint(settings)) else None
    return g.console_session


def signed_in(settings: Settings, store: Store) -> bool:
    return _current(settings, store) is not None


def shown_signed_in(settings: Settings, store: Store) -> bool:
    """For a page's header: signed in, or not when the store cannot say (an error page must render)."""
    try:
        return signed_in(settings, store)
    except StoreUnavailable:
        g.console_session = None
        return False


def operator() -> str:
    """Who did it, for the action log: the name given at sign-in and the address it came from."""
    found = g.get("console_session")
    return f"{found.who or 'operator'} ({found.client})" if found else "operator (?)"


def login_required(settings: Settings, store: Store) -> Callable:
    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not signed_in(settings, store):
                session.clear()
                return redirect(url_for("console.login", next=request.full_path if request.method == "GET" else None))
            return view(*args, **kwargs)

        return wrapped

    return decorate


def try_login(settings: Settings, store: Store, password: str, name: str) -> tuple[bool, str]:
    """Check a password; ``(True, "")`` opens a session, else ``(False, why)``. Each try is counted
    before it is judged (and taken back if the password is right): tries that arrive together
    cannot all pass a check made before any of them was counted."""
    client = "console " + client_key(request.remote_addr)
    over = [
        store.limits.key_failure(client, LOGIN_WINDOW) > LOGIN_LIMIT,
        store.limits.key_failure(EVERYONE, LOGIN_WINDOW, total=True) > LOGIN_LIMIT_ALL,
    ]
    if any(over):
        wait = max(
            store.limits.key_block(client, LOGIN_WINDOW, LOGIN_LIMIT),
            store.limits.key_block(EVERYONE, LOGIN_WINDOW, LOGIN_LIMIT_ALL, total=True),
        )
        log.warning("console sign-in refused from %s: too many wrong passwords", request.remote_addr)
        return False, f"Too many wrong passwords: try again in {max(1, math.ceil(wait))} s."
    if not hmac.compare_digest(password.encode(), (settings.console_password or "").encode()):
        log.warning("console sign-in refused from %s: wrong password", request.remote_addr)
        return False, "Wrong password."
    store.limits.key_refund(client)
    store.limits.key_refund(EVERYONE, total=True)
    _end(store)  # a sign-in in the same browser replaces its session, and a new id defeats fixation
    session.permanent = True
    who, address = _printable(name)[:60], request.remote_addr or "?"
    session["sid"], g.console_session = store.sessions.open(
        who, address, _fingerprint(settings), settings.console_session_seconds
    )
    log.info("console sign-in by %s", operator())
    return True, ""


def sign_out(settings: Settings, store: Store) -> None:
    """End the session in the store, so that no copy of the cookie opens it again."""
    if signed_in(settings, store):
        log.info("console sign-out by %s", operator())
    _end(store)


def _end(store: Store) -> None:
    if session.get("sid"):
        store.sessions.end(session["sid"])
    session.clear()


def _printable(text: str) -> str:
    return "".join(c for c in text.strip() if c.isprintable())
