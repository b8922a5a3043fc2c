"""Ortto REST client: load contacts, write a field back, merge people. The only module that speaks to Ortto.

Both calls take up to 100 people, so a burst costs Ortto a call per hundred deliveries, and a
shared ``RateLimiter`` keeps the process under the plan's requests per second.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

from ..accounts import Contact
from ..errors import PermanentError, TransientError
from .http import RateLimiter, json_or_none, new_session, retry_after, send

DEFAULT_RETRY_SECONDS = 10.0
MAX_PEOPLE = 100  # per get-by-ids or merge call
MAX_PAGE = 500  # people per person/get page
SAVED = ("created", "merged")  # a merged person's statuses when Ortto saved it
OVERWRITE, KEEP_EXISTING = 2, 3  # merge strategies: overwrite values, or keep those a person has
PATIENCE = 5  # tries of one page when Ortto says when to come back
#: Ortto's built-in person fields (its docs), and the pseudo-field holding tag names.
BUILT_IN_FIELDS = frozenset(
    {
        "str::email",
        "str::first",
        "str::last",
        "str::ei",
        "str::postal",
        "phn::phone",
        "geo::city",
        "geo::country",
        "geo::region",
        "dtz::b",
        "bol::p",
        "tags",
    }
)


class OrttoError(PermanentError):
    """Ortto refused the request (bad key, bad field, invalid person); ``details`` holds Ortto's
    per-person reasons when it gave them (a merge in which no person was valid)."""

    def __init__(self, message: str, code: str = "", details: list | None = None):
        super().__init__(message, code)
        self.details = details or []


@dataclass(frozen=True)
class Refusal:
    """Why Ortto did not save one person: its status (``suppressed``, ``invalid``) and reason."""

    code: str
    reason: str


class OrttoClient:
    def __init__(
        self, api_url: str, api_key: str, session: requests.Session | None = None, limiter: RateLimiter | None = None
    ):
        self.api_url = api_url.rstrip("/")
        self.session = session or new_session()
        self.session.headers["X-Api-Key"] = api_key
        self.limiter = limiter

    def get_contacts(self, contact_ids: list[str], fields: list[str]) -> dict[str, Contact]:
        """The people with these ids (up to 100), by id; ids Ortto does not know are left out."""
        assert 0 < len(contact_ids) <= MAX_PEOPLE
        body = self._post("/v1/person/get-by-ids", {"contact_ids": contact_ids, "fields": fields})
        return {str(key): _contact(found) for key, found in (body.get("contacts") or {}).items() if found}

    def find_by_email(self, email: str, fields: list[str]) -> Contact | None:
        """The person whose email is ``email``, or ``None`` (Ortto answers ``contacts: null``)."""
        body = self._post(
            "/v1/person/get",
            {"limit": 1, "fields": fields, "filter": {"$str::is": {"field_id": "str::email", "value": email}}},
        )
        contacts = body.get("contacts") or []
        return _contact(contacts[0]) if contacts else None

    def people(
        self,
        fields: list[str],
        page_size: int = MAX_PAGE,
        where: dict | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> Iterator[list[Contact]]:
        """Every person (or those matching the filter ``where``), a page at a time, through
        ``person/get``: ``offset`` = the previous page's ``next_offset`` with its ``cursor_id``,
        while ``has_more`` (an empty page is ``contacts: null``). A long scan waits as Ortto tells
        it to (429 ``try-in-seconds``, ``Retry-After``; ``on_wait`` hears how long), up to
        ``PATIENCE`` times a page."""
        request: dict[str, Any] = {"limit": page_size, "fields": fields}
        if where is not None:
            request["filter"] = where
        while True:
            body = self._post_patiently("/v1/person/get", request, on_wait)
            yield [_contact(c) for c in body.get("contacts") or [] if isinstance(c, dict)]
            if not body.get("has_more"):
                return
            request = {**request, "offset": body["next_offset"], "cursor_id": body["cursor_id"]}

    def _post_patiently(self, path: str, payload: dict, on_wait: Callable[[float], None] | None) -> Any:
        """``_post``, trying again after the wait Ortto asks for (``PATIENCE`` tries)."""
        for tries in itertools.count(1):
            try:
                return self._post(path, payload)
            except TransientError as exc:
                if exc.retry_after is None or tries >= PATIENCE:
                    raise
                if on_wait:
                    on_wait(exc.retry_after)
                time.sleep(exc.retry_after)

    def set_field(self, field_id: str, values: dict[str, str]) -> dict[str, Refusal | None]:
        """Overwrite one field of up to 100 people, found by person id, in one merge (see ``merge_by_id``)."""
        return self.merge_by_id({pid: {"fields": {field_id: value}} for pid, value in values.items()}, field_id)

    def merge_by_id(self, people: dict[str, dict[str, Any]], what: str = "the change") -> dict[str, Refusal | None]:
        """Merge up to 100 people found by person id (each ``{"fields": ..., "tags": ..., "unset_tags":
        ...}``), overwriting. Returns, for each person, ``None`` when Ortto saved it, else Ortto's own
        status and reason. When no person in the call was valid Ortto answers 400 with the reasons
        in ``details``: those are returned per person too; any other refusal raises."""
        bodies = [{**body, "fields": {"str::person_id": pid, **body.get("fields", {})}} for pid, body in people.items()]
        return _by_person(what, list(people), self._merge(bodies, "str::person_id", OVERWRITE))

    def merge_by_email(self, people: dict[str, dict[str, Any]]) -> dict[str, str | Refusal]:
        """Merge up to 100 people by email (new ones created, unless their email is on Ortto's
        suppression list), keeping the values an existing person already has. Returns each email's person id, or Ortto's refusal. Ortto's answer names no
        email, in an order that cannot be trusted, so the saved people's emails are read back
        (one more call)."""
        bodies = [{**body, "fields": {**body.get("fields", {}), "str::email": email}} for email, body in people.items()]
        results = self._merge(bodies, "str::email", KEEP_EXISTING, {"suppression_list_field_id": "str::email"})
        saved = [str(r["person_id"]) for r in results if r.get("person_id") and r.get("status") in SAVED]
        found = {}
        for start in range(0, len(saved), MAX_PEOPLE):
            for pid, contact in self.get_contacts(saved[start : start + MAX_PEOPLE], ["str::email"]).items():
                found[str(contact.fields.get("str::email") or "").lower()] = pid
        refusal = _shared_refusal("the new user", [r for r in results if not r.get("person_id")])
        return {email: found.get(email.lower()) or refusal for email in people}

    def _merge(
        self, people: list[dict[str, Any]], merge_by: str, strategy: int, extra: dict | None = None
    ) -> list[dict]:
        """One ``person/merge`` call: its per-person results (or, when none was valid, the 400's details)."""
        assert 0 < len(people) <= MAX_PEOPLE
        try:
            body = self._post(
                "/v1/person/merge",
                {
                    "people": people,
                    "async": False,
                    "merge_by": [merge_by],
                    "merge_strategy": strategy,
                    "find_strategy": 0,
                    **(extra or {}),
                },
            )
            results = body.get("people") or []
        except OrttoError as exc:
            if not exc.details:
                raise
            results = exc.details
        return [r for r in results if isinstance(r, dict)]

    def custom_fields(self) -> dict[str, str]:
        """The account's custom person fields: id to display type (``text``, ``number``...)."""
        body = self._post("/v1/person/custom-field/get", {})
        fields = {}
        for entry in body.get("fields") or []:
            field = entry.get("field") if isinstance(entry, dict) else None
            if isinstance(field, dict) and field.get("id"):
                fields[str(field["id"])] = str(field.get("display_type") or "")
        return fields

    def _post(self, path: str, payload: dict) -> Any:
        if self.limiter is not None:
            self.limiter.acquire()
        response = send(self.session, "Ortto", "POST", self.api_url + path, json=payload)
        body = json_or_none(response)
        if response.status_code == 429:
            hint = None
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                hint = body["error"].get("try-in-seconds")
            delay = float(hint) if isinstance(hint, (int, float)) else retry_after(response)
            raise TransientError("Ortto rate limit reached", retry_after=delay or DEFAULT_RETRY_SECONDS)
        code = f"HTTP {response.status_code}"
        if response.status_code >= 500:
            raise TransientError(
                f"Ortto answered {code}: {_error_text(body)}", retry_after=retry_after(response), code=code
            )
        if response.status_code in (401, 403):
            raise OrttoError(f"Ortto refused the API key ({code}); check ORTTO_API_KEY and ORTTO_REGION", code)
        if response.status_code >= 400:
            details = body.get("details") if isinstance(body, dict) and isinstance(body.get("details"), list) else None
            raise OrttoError(f"Ortto answered {code}: {_error_text(body)}", code, details)
        if body is None:
            raise TransientError(f"Ortto answered HTTP {response.status_code} without JSON")
        return body


def _by_person(what: str, people: list[str], results: list[dict]) -> dict[str, Refusal | None]:
    """Each person's result, matched by ``person_id``: the live API answers in an order that
    cannot be checked against the request's. A refusal carries no person id, so the people with
    no result of their own share the refusals' reasons."""
    saved = {str(r["person_id"]) for r in results if r.get("person_id") and r.get("status") in SAVED}
    own = {str(r["person_id"]): r for r in results if r.get("person_id") and str(r["person_id"]) not in saved}
    shared = _shared_refusal(what, [r for r in results if not r.get("person_id")])
    outcome: dict[str, Refusal | None] = {}
    for person_id in people:
        if person_id in saved:
            outcome[person_id] = None
        elif person_id in own:
            outcome[person_id] = Refusal(
                str(own[person_id].get("status") or "refused"),
                f"Ortto did not save {what}: {_refusal_text(own[person_id])}",
            )
        else:
            outcome[person_id] = shared
    return outcome


def _shared_refusal(what: str, anonymous: list[dict]) -> Refusal:
    """The reasons of the refusals that name nobody, for each person with no result of its own."""
    statuses = {str(r.get("status") or "refused") for r in anonymous}
    return Refusal(
        statuses.pop() if len(statuses) == 1 else "refused",
        f"Ortto did not save {what}: "
        + (" or ".join(sorted({_refusal_text(r) for r in anonymous})) or "no answer for this person"),
    )


def _refusal_text(result: dict) -> str:
    return f"{result.get('status') or 'refused'} ({result.get('error') or 'no reason given'})"


def _contact(data: dict) -> Contact:
    return Contact(id=str(data["id"]), fields=dict(data.get("fields") or {}))


def _error_text(body: Any) -> str:
    """Ortto's reason, with the first of its per-person details when it gave any."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        details = body.get("details")
        if error and isinstance(details, list) and details and isinstance(details[0], dict) and details[0].get("error"):
            return f"{error}: {details[0]['error']}"
        if error:
            return str(error)
    return "no error message"
