"""The web process: the webhook endpoint. Authenticate, validate, commit, answer; nothing slower."""

from __future__ import annotations

import hmac
import json
import logging
import math

from flask import Flask, Response, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from .. import logs
from ..metrics import WEBHOOKS
from ..settings import Settings, load_settings
from ..store import ClientBlocked, Store, StoreUnavailable
from .addresses import client_key, looks_proxied
from .bodies import WholeBodies
from .console import init_console
from .metrics import metrics_blueprint
from .readiness import readiness
from .refusals import Refusals, named
from .webhook import describe, read_webhook

MAX_BODY = 1024 * 1024
REFUSED = {400: "invalid", 403: "wrong_key", 413: "too_large", 429: "rate_limited"}  # metric label by status
KEY_FAILURE_WINDOW = 60.0  # seconds; WPF_KEY_FAILURE_LIMIT wrong keys per window, then 429
log = logging.getLogger(__name__)
PROXY_WARNING = (
    "requests from %s carry X-Forwarded-For but WPF_TRUSTED_PROXIES=0: behind a reverse proxy every client "
    "shares the proxy's address, so a few wrong keys (or console passwords) from anyone would lock Ortto "
    "(or the operators) out too, and the console's cookie is not marked Secure; set "
    "WPF_TRUSTED_PROXIES to the number of proxies in front of the bridge (see docs/security.md)"
)


def create_app(settings: Settings | None = None) -> Flask:
    """App factory: ``gunicorn 'wpf_bridge.web:create_app()'``."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.wsgi_app = WholeBodies(app.wsgi_app, MAX_BODY)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        proxies = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    store = Store(settings.database_url)
    refusals = Refusals(store)
    app.extensions["wpf_bridge"] = {"settings": settings, "store": store, "refusals": refusals}
    logs.configure(settings.secrets(), settings.json_logs)
    if warning := settings.placeholder_warning():
        log.warning("%s", warning)

    if settings.console_password:
        init_console(app, settings, store)
    if settings.metrics_token:
        app.register_blueprint(metrics_blueprint(settings, store))
    proxy_warned: list[bool] = []

    @app.before_request
    def warn_once_behind_an_unknown_proxy() -> None:
        """Webhooks and console sign-ins are limited per client address: behind an undeclared
        proxy every client shares one, so say so once."""
        if (
            not settings.trusted_proxies
            and not proxy_warned
            and looks_proxied(request.remote_addr, request.headers.get("X-Forwarded-For"))
        ):
            proxy_warned.append(True)
            log.warning(PROXY_WARNING, request.remote_addr)

    def refuse(message: str, status: int, reason: str, read_body: bool = True) -> tuple[Response, int]:
        """Answer a refused webhook; log and count it with who it named (never the key)."""
        values = request.values if read_body else request.args
        WEBHOOKS.labels(REFUSED.get(status, "refused")).inc()
        refusals.record(
            status, reason, client_key(request.remote_addr), named(values.get("contact_id"), values.get("email"))
        )
        return _error(message, status)

    def unless_blocked(client: str) -> tuple[Response, int] | None:
        """The 429 for a client over its wrong-key limit, else ``None``."""
        wait = store.limits.key_block(client, KEY_FAILURE_WINDOW, settings.key_failure_limit)
        return blocked(wait) if wait else None

    def blocked(wait: float) -> tuple[Response, int]:
        response, status = refuse(
            "too many wrong access keys; try again later",
            429,
            f"access_key: over {settings.key_failure_limit} wrong keys a minute",
        )
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response, status

    @app.route("/", methods=["GET", "POST"])
    @app.route("/webhook", methods=["GET", "POST"])
    def webhook() -> tuple[Response, int]:
        # A client over its wrong-key limit gets 429 whatever key it sends, so that no answer tells
        # a guesser which key was right: the body is read and checked first, for every key alike
        # (its faults answer 400 whatever the key), and only then the key. On the way to a 202 the
        # block check is part of the store's one write (one round trip on PostgreSQL).
        client = client_key(request.remote_addr)
        try:
            payload = _json_payload()
            call = read_webhook(request.values, payload, settings.same_call_seconds)
        except _BadPayload as exc:
            return refuse(exc.description or "bad body", 400, f"body: {exc.description}")
        except ValidationError as exc:
            name, message = _first_error(exc)
            return refuse(message if name in message else f"{name}: {message}", 400, f"{name}: {message}")
        if not _key_matches(_given_key(), settings.access_keys):
            # counted before it is answered: keys sent together cannot all pass a check made before any was counted
            if store.limits.key_failure(client, KEY_FAILURE_WINDOW) > settings.key_failure_limit:
                return blocked(store.limits.key_block(client, KEY_FAILURE_WINDOW, settings.key_failure_limit))
            return refuse("wrong or missing access_key", 403, f"access_key: {'wrong' if _given_key() else 'missing'}")
        if call.is_test:
            if answer := unless_blocked(client):
                return answer
            WEBHOOKS.labels("test").inc()
            return jsonify(success=True), 200
        try:
            delivery, new = (
                store.ingest.add(  # with the block check: the right key from a blocked client is refused too
                    call.action,
                    call.contact_id,
                    call.email,
                    call.role,
                    call.send_notification,
                    dedupe_key=call.dedupe_key,
                    window=call.dedupe_window,
                    waiting_only=call.dedupe_waiting_only,
                    shape=describe(request.method, request.mimetype, list(request.values), payload),
                    client=client,
                    key_limit=(KEY_FAILURE_WINDOW, settings.key_failure_limit),
                )
            )
        except ClientBlocked as exc:
            return blocked(exc.wait)
        except StoreUnavailable as exc:
            log.error("%s", exc)
            WEBHOOKS.labels("unavailable").inc()
            return _error("the delivery could not be stored; try again", 503)
        WEBHOOKS.labels("accepted" if new else "redelivery").inc()
        return jsonify(success=True, delivery_id=delivery.id, action=call.action, duplicate=not new), 202

    @app.get("/health")
    def health() -> tuple[Response, int]:
        """Liveness: the web process answers (reads nothing)."""
        return jsonify(status="ok"), 200

    @app.get("/ready")
    def ready() -> tuple[Response, int]:
        """Readiness: the store answers, and deliveries are not stalled (see ``readiness``)."""
        answer, status = readiness(store, settings.stall_seconds)
        return jsonify(answer), status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        if exc.code == 413:
            return refuse(f"the body is over {MAX_BODY // 1024} KiB", 413, "body: over 1 MiB", read_body=False)
        return _error(exc.description or exc.name, exc.code or 500)

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(exc: StoreUnavailable) -> tuple[Response, int]:
        """Whatever the request was reading or writing (the wrong-key count, say): Ortto retries a 503."""
        log.error("%s", exc)
        WEBHOOKS.labels("unavailable").inc()
        return _error("the delivery store is unavailable; try again", 503)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return _error("internal error", 500)

    return app


class _BadPayload(HTTPException):
    code = 400


def _given_key() -> str:
    return (
        request.args.get("access_key") or request.headers.get("X-WPF-Access-Key") or request.form.get("access_key", "")
    )


def _key_matches(given: str, keys: tuple[str, ...]) -> bool:
    """Compare with every configured key in constant time (several keys allow rotation)."""
    given_bytes = given.encode("utf-8")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given_bytes, key.encode("utf-8"))
    return matched and bool(given)


def _json_payload() -> dict | None:
    """Ortto's JSON body, if the request has one; form bodies are read as parameters instead."""
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return None
    raw = request.get_data(cache=True)
    if not raw.strip():
        return None
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _BadPayload("the body is not valid JSON") from None
    except RecursionError:
        raise _BadPayload("the JSON body is nested too deep") from None
    if not isinstance(payload, dict):
        raise _BadPayload("the JSON body must be an object")
    return payload


def _first_error(exc: ValidationError) -> tuple[str, str]:
    """The first parameter marshmallow refused, and why."""
    name, messages = next(iter(exc.normalized_messages().items()))
    return name, messages[0] if isinstance(messages, list) else str(messages)


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify(success=False, error=message), status
