"""Ortto REST client: load contacts, write a field back. The only module that speaks to Ortto."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from .errors import PermanentError, TransientError
from .http import json_or_none, new_session, retry_after, send

DEFAULT_RETRY_SECONDS = 10.0


class OrttoError(PermanentError):
    """Ortto refused the request (bad key, bad field, invalid person)."""


@dataclass(frozen=True)
class Contact:
    id: str
    fields: dict[str, Any]

    @property
    def email(self) -> str | None:
        return self.fields.get("str::email") or None

    @property
    def tags(self) -> list[str]:
        return [str(tag) for tag in self.fields.get("tags") or []]


class OrttoClient:
    def __init__(self, api_url: str, api_key: str, session: requests.Session | None = None):
        self.api_url = api_url.rstrip("/")
        self.session = session or new_session()
        self.session.headers["X-Api-Key"] = api_key

    def get_contact(self, contact_id: str, fields: list[str]) -> Contact | None:
        """The person with this id, or ``None`` when Ortto does not know it."""
        body = self._post("/v1/person/get-by-ids", {"contact_ids": [contact_id], "fields": fields})
        found = (body.get("contacts") or {}).get(contact_id)
        return _contact(found) if found else None

    def find_by_email(self, email: str, fields: list[str]) -> Contact | None:
        """The person whose email is ``email``, or ``None`` (Ortto answers ``contacts: null``)."""
        body = self._post(
            "/v1/person/get",
            {"limit": 1, "fields": fields, "filter": {"$str::is": {"field_id": "str::email", "value": email}}},
        )
        contacts = body.get("contacts") or []
        return _contact(contacts[0]) if contacts else None

    def set_field(self, person_id: str, field_id: str, value: str) -> None:
        """Overwrite one field of one person, found by person id (no email-merge limits)."""
        body = self._post(
            "/v1/person/merge",
            {
                "people": [{"fields": {"str::person_id": person_id, field_id: value}}],
                "async": False,
                "merge_by": ["str::person_id"],
                "merge_strategy": 2,
                "find_strategy": 0,
            },
        )
        people = body.get("people") or [{}]
        status, error = people[0].get("status"), people[0].get("error")
        if error or status in ("suppressed", "invalid"):
            raise OrttoError(f"Ortto did not save {field_id}: {status or 'refused'} ({error or 'no reason given'})")

    def check_key(self) -> None:
        """Raise unless Ortto accepts the key (the cheapest authenticated call)."""
        self._post("/v1/tags/get", {})

    def _post(self, path: str, payload: dict) -> Any:
        response = send(self.session, "Ortto", "POST", self.api_url + path, json=payload)
        body = json_or_none(response)
        if response.status_code == 429:
            hint = None
            if isinstance(body, dict) and isinstance(body.get("error"), dict):
                hint = body["error"].get("try-in-seconds")
            delay = float(hint) if isinstance(hint, (int, float)) else retry_after(response)
            raise TransientError("Ortto rate limit reached", retry_after=delay or DEFAULT_RETRY_SECONDS)
        if response.status_code >= 500:
            raise TransientError(f"Ortto answered HTTP {response.status_code}", retry_after=retry_after(response))
        if response.status_code in (401, 403):
            raise OrttoError(f"Ortto refused the API key (HTTP {response.status_code}); check ORTTO_API_KEY and ORTTO_REGION")
        if response.status_code >= 400:
            raise OrttoError(f"Ortto answered HTTP {response.status_code}: {_error_text(body)}")
        if body is None:
            raise TransientError(f"Ortto answered HTTP {response.status_code} without JSON")
        return body


def _contact(data: dict) -> Contact:
    return Contact(id=str(data["id"]), fields=dict(data.get("fields") or {}))


def _error_text(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error:
            return str(error)
    return "no error message"
