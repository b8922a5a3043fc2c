"""WordPress REST client (application password). The only module that speaks to WordPress.

Routes are addressed as ``/?rest_route=...`` so the bridge works whether or not the site has
pretty permalinks. Look-ups and meta writes go through the companion plugin
(``wpf-bridge wordpress-plugin``); without it they fail with a clear reason instead of
WordPress silently dropping the meta.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import requests

from ..accounts import POWERS, Change, Lookup, Profile, User
from ..errors import BridgeError, PermanentError, TransientError
from .http import json_or_none, new_session, retry_after, send

PLUGIN_MISSING = (
    "the wpf-bridge companion plugin is not installed on WordPress "
    "(run `wpf-bridge wordpress-plugin --install /path/to/wordpress`)"
)

MAX_LOOKUPS = 100  # people per look-up request (the companion plugin's WPF_BRIDGE_MAX_LOOKUPS)
# user writes per batch request (the companion plugin's WPF_BRIDGE_MAX_WRITES; WPF_BATCH_SIZE's ceiling)
MAX_WRITES = 50

_JUDGED = sorted(POWERS)

PLUGIN_OUTDATED = (
    "the wpf-bridge companion plugin on WordPress is older than 1.3.0, which takes many look-ups and user "
    "writes per request (run `wpf-bridge wordpress-plugin --install /path/to/wordpress` to update it)"
)


OUTBOX_MISSING = (
    "the wpf-bridge companion plugin on WordPress is older than 1.6.0, which records WordPress's changes for "
    "Ortto (run `wpf-bridge wordpress-plugin --install /path/to/wordpress` to update it)"
)
MAX_CHANGES = 500  # outbox rows per pull and per acknowledgement (the companion plugin's WPF_BRIDGE_OUTBOX_PAGE)


class WordPressError(PermanentError):
    """WordPress refused a request; ``code`` is WordPress's own error code."""

    def __init__(self, message: str, code: str = "", status: int = 0):
        super().__init__(message, code)
        self.status = status


class PluginOutdated(WordPressError):
    """The site's companion plugin lacks the batch routes: send the requests one by one."""


class BatchRefused(WordPressError):
    """A batch request was refused as a whole (see ``WordPressClient._batch``)."""


class WordPressClient:
    def __init__(self, url: str, user: str, app_password: str, session: requests.Session | None = None):
        self.url = url.rstrip("/") + "/"
        self.session = session or new_session()
        self.session.auth = (user, app_password)

    def status(self) -> dict[str, Any]:
        """The companion plugin's report: its version, our capabilities, each role's capabilities."""
        return self._call("GET", "/wpf-bridge/v1/status")

    def me(self) -> User:
        """The user the bridge signs in as, with its capabilities (core REST; needs no plugin)."""
        return User.from_json(self._call("GET", "/wp/v2/users/me", params={"context": "edit"}))

    def user_fields(self, user_id: int) -> dict[str, Any]:
        """A user as core's users route shows it to an editor (names, email, url, roles...; core REST)."""
        return dict(self._call("GET", f"/wp/v2/users/{user_id}", params={"context": "edit"}))

    def lookup(self, contact_id: str | None, email: str | None) -> Lookup:
        """Users holding this Ortto contact id, and this email, in one request, each with where it
        stands on every site of the network."""
        params = {"contact_id": contact_id or "", "email": email or "", "capabilities": ",".join(_JUDGED)}
        return Lookup.from_json(self._call("GET", "/wpf-bridge/v1/users/lookup", params=params))

    def create_user(self, values: dict[str, Any]) -> User:
        return User.from_json(self._call("POST", "/wp/v2/users", json=values))

    def update_user(self, user_id: int, values: dict[str, Any]) -> User:
        return User.from_json(self._call("POST", f"/wp/v2/users/{user_id}", json=values))

    def lookup_many(self, people: Sequence[tuple[str | None, str | None]]) -> list[Lookup]:
        """``lookup`` for up to ``MAX_LOOKUPS`` (contact id, email) pairs in one request (companion plugin 1.3.0+)."""
        answers = self._batch(
            "/wpf-bridge/v1/users/lookup",
            "results",
            len(people),
            {
                "people": [{"contact_id": contact_id or "", "email": email or ""} for contact_id, email in people],
                "capabilities": _JUDGED,
            },
        )
        return [Lookup.from_json(found) for found in answers]

    def write_many(self, writes: list[tuple[int | None, dict[str, Any]]]) -> list[User | BridgeError]:
        """Create (no id) or update up to ``MAX_WRITES`` users in one request (companion plugin 1.3.0+): WordPress
        runs each as its own request to core's users route. Each write's result is its user, or the
        error ``create_user`` or ``update_user`` would have raised for it alone."""
        answers = self._batch(
            "/wpf-bridge/v1/users/batch",
            "responses",
            len(writes),
            {"writes": [{"values": values, **({"user": user_id} if user_id else {})} for user_id, values in writes]},
        )
        results: list[User | BridgeError] = []
        for (user_id, _), answer in zip(writes, answers, strict=True):
            route = f"/wp/v2/users/{user_id}" if user_id else "/wp/v2/users"
            try:
                results.append(User.from_json(self._judge(route, int(answer["status"]), answer.get("body"))))
            except BridgeError as exc:
                results.append(exc)
            except (KeyError, TypeError, ValueError):
                results.append(TransientError(f"WordPress answered a write of the batch with no user: {answer!r:.200}"))
        return results

    def outbox_watch(self, new: bool, roles: bool, columns: list[str], meta: list[str]) -> dict[str, Any]:
        """Tell the companion plugin (1.6.0+) what to record in its outbox: new users, role changes,
        changes to these ``users`` columns and meta keys. The first credential to ask becomes the
        only one that may read the outbox: the bridge's own (its ``wpf-bridge`` application password)."""
        return self._outbox("POST", "/watch", json={"new": new, "roles": roles, "fields": columns, "meta": meta})

    def outbox_pull(self, limit: int = MAX_CHANGES) -> tuple[list[Change], int, float]:
        """The oldest changes recorded (up to ``limit``), how many are recorded in all, and when the
        oldest was made (seconds since the epoch; 0 when there is none)."""
        body = self._outbox("GET", "", params={"limit": limit})
        try:
            changes = [
                Change(
                    int(c["id"]),
                    str(c["kind"]),
                    int(c["user_id"]),
                    str(c["changed_at"]),
                    Profile.from_json(c["user"]) if c.get("user") else None,
                )
                for c in body["changes"]
            ]
            return changes, int(body["behind"]), _epoch(body.get("oldest"))
        except (KeyError, TypeError, ValueError):
            raise TransientError(
                "WordPress answered the outbox without its changes, in a shape this bridge does not read"
            ) from None

    def outbox_export(self, after: int, role: str = "", dry_run: bool = False) -> dict[str, Any]:
        """Record existing users with ids above ``after`` (of ``role``), a page of them, as ``export``
        changes when they are not linked to an Ortto person yet: ``{users, export, last, more}``."""
        body = {"after": after, "role": role, "dry_run": dry_run, "limit": MAX_CHANGES}
        return self._outbox("POST", "/export", json=body)

    def outbox_users(self, ids: list[int]) -> dict[int, Profile | None]:
        """These users as they are now (up to ``MAX_CHANGES``), as the outbox gives them; ``None``: deleted."""
        body = self._outbox("GET", "/users", params={"ids[]": ids})
        users = body.get("users") if isinstance(body, dict) else None
        if not isinstance(users, list) or len(users) != len(ids):
            raise TransientError("WordPress answered /outbox/users without one user for each id asked")
        try:
            return {i: Profile.from_json(u) if u else None for i, u in zip(ids, users, strict=True)}
        except (KeyError, TypeError, ValueError):
            raise TransientError("WordPress answered /outbox/users in a shape this bridge does not read") from None

    def outbox_ack(self, ids: list[int]) -> int:
        """Remove these changes from the outbox (they are stored as deliveries); how many went."""
        return int(self._outbox("POST", "/ack", json={"ids": ids}).get("removed", 0))

    def _outbox(self, method: str, path: str, params: dict | None = None, json: dict | None = None) -> Any:
        try:
            return self._call(method, "/wpf-bridge/v1/outbox" + path, params=params, json=json)
        except WordPressError as exc:
            if exc.code == "rest_no_route" and self._call("GET", "/wpf-bridge/v1/status"):
                raise WordPressError(OUTBOX_MISSING, exc.code, exc.status) from None
            raise

    def _batch(self, route: str, key: str, count: int, json: dict) -> list:
        """A batch route's answers (``body[key]``, one per item sent). A refusal of the request as a
        whole that came from WordPress or what stands in front of it (an error page, a PHP fatal
        error, a body too large) is ``BatchRefused``: each item may then be sent alone, so that only
        the one that causes it fails; no answer at all, a 401 or a request to slow down is raised
        as it is, for every item."""
        response = self._send("POST", route, json=json)
        try:
            body = self._judge(route, response.status_code, json_or_none(response), response)
        except WordPressError as exc:
            if exc.code == "rest_no_route":
                raise PluginOutdated(PLUGIN_OUTDATED, exc.code, exc.status) from None
            if exc.status == 401:
                raise
            raise BatchRefused(str(exc), exc.code, exc.status) from None
        except TransientError as exc:
            if response.status_code == 429 or exc.retry_after is not None:
                raise
            raise BatchRefused(str(exc), exc.code, response.status_code) from None
        answers = body.get(key) if isinstance(body, dict) else None
        if not isinstance(answers, list) or len(answers) != count or not all(isinstance(a, dict) for a in answers):
            raise TransientError(f"WordPress answered {route} without one answer for each of the {count} items sent")
        return answers

    def _call(self, method: str, route: str, params: dict | None = None, json: dict | None = None) -> Any:
        response = self._send(method, route, params, json)
        return self._judge(route, response.status_code, json_or_none(response), response)

    def _send(self, method: str, route: str, params: dict | None = None, json: dict | None = None) -> requests.Response:
        response = send(
            self.session,
            "WordPress",
            method,
            self.url,
            params={"rest_route": route, **(params or {})},
            json=json,
            allow_redirects=False,
        )
        if response.is_redirect:  # following it would turn a POST into a GET, and the user would not be created
            raise WordPressError(
                f"WordPress redirects its REST API to {response.headers.get('Location', '?')}: set "
                "WORDPRESS_URL to the address it redirects to (https://, www., the sub-folder)",
                "redirect",
                response.status_code,
            )
        return response

    def _judge(self, route: str, status: int, body: Any, response: requests.Response | None = None) -> Any:
        """WordPress's answer (``status``, JSON ``body``; ``response`` for the raw page, if any) as
        its body, or the error it means: retry later (``TransientError``) or not (``WordPressError``)."""
        if 200 <= status < 300 and body is not None:
            return body
        code = str(body.get("code", "")) if isinstance(body, dict) else ""
        message = _plain(body.get("message", "")) if isinstance(body, dict) else ""
        if code in ("existing_user_login", "existing_user_email") or code.endswith("_too_long"):
            raise WordPressError(f"WordPress refused the user: {message} ({code})", code, status)  # sent as HTTP 500
        if body is None and status < 300:  # a page where the REST API should answer
            raise TransientError(
                f"WORDPRESS_URL answered HTTP {status} with a page ({_page(response)}), not WordPress's REST API: "
                "a site without WordPress there, a PHP fatal error, or a page from the host, a proxy or a firewall",
                code=f"HTTP {status}",
            )
        if status == 429 or status >= 500:
            said = (
                f" {code}: {message}"
                if code or message
                else f" (not JSON but {_page(response)}: a PHP fatal error, or a page from the host, a proxy or a firewall)"
            )
            raise TransientError(
                f"WordPress answered HTTP {status}{said}".rstrip(": "),
                retry_after=retry_after(response) if response is not None else None,
                code=code or f"HTTP {status}",
            )
        if code == "rest_no_route" and route.startswith("/wpf-bridge/"):
            raise WordPressError(PLUGIN_MISSING, code, status)
        if status == 401:
            raise WordPressError(
                "WordPress refused the application password (HTTP 401"
                f"{', ' + code if code else ''}); check WORDPRESS_USER and WORDPRESS_APP_PASSWORD, "
                "and that the web server passes the Authorization header",
                code,
                status,
            )
        if isinstance(body, dict) and not code and status >= 400:  # JSON, but not WordPress's error shape
            said = _plain(body.get("error") or body.get("message") or body, 120)
            itself = " (wpf-bridge's own answer: WORDPRESS_URL points at the bridge)" if "wpf_action" in said else ""
            raise WordPressError(
                f"no WordPress answers at WORDPRESS_URL: it answered HTTP {status} {said!r}, which WordPress's REST "
                f"API never says{itself}; set WORDPRESS_URL to the site's address, as WordPress shows it in "
                "Settings > General",
                f"HTTP {status}",
                status,
            )
        if body is None and status in (404, 410):  # no REST API at all there: not a WordPress site's address
            raise WordPressError(
                f"no WordPress answers at WORDPRESS_URL: its REST API is not found there (HTTP {status}); set "
                "WORDPRESS_URL to the site's address, as WordPress shows it in Settings > General",
                f"HTTP {status}",
                status,
            )
        if body is None:  # a web application firewall, the host or a security plugin answered, not WordPress's REST API
            raise WordPressError(
                f"WordPress answered HTTP {status} (not JSON but {_page(response)}): something in front of WordPress "
                "refuses the bridge; allow its address (or its User-Agent, wpf-bridge) there",
                f"HTTP {status}",
                status,
            )
        raise WordPressError(f"WordPress answered HTTP {status} {code}: {message}".strip(), code, status)


def _epoch(moment: Any) -> float:
    """An outbox time (``2026-12-04 10:00:00Z``) as seconds since the epoch; 0 when there is none."""
    try:
        return datetime.fromisoformat(str(moment).replace(" ", "T")).timestamp() if moment else 0.0
    except ValueError:
        return 0.0


def _page(response: requests.Response | None) -> str:
    """What came instead of JSON, in a few words: its type and, for an HTML page, its title."""
    if response is None:  # an answer inside a batch
        return "no body"
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    title = re.search(r"<title[^>]*>(.*?)</title>", response.text[:5000], re.IGNORECASE | re.DOTALL)
    return kind + (f" titled {_plain(title.group(1), 80)!r}" if title else "")


def _plain(message: object, limit: int = 300) -> str:
    """WordPress's message as one line of plain text (its fatal-error page sends HTML)."""
    text = re.sub(r"<[^>]+>", " ", str(message))
    return " ".join(text.split())[:limit]
