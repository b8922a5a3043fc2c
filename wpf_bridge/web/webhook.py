"""What one webhook call asks for: WP Fusion's URL parameters plus Ortto's JSON payload."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema

from ..types import ACTION_NAMES, CONTACT_ID, ROLE_NAME

ORTTO_TEST_EVENT = "act::test_webhook"
REDELIVERY_WINDOW = 48 * 3600.0  # Ortto retries one delivery for up to a day


@dataclass(frozen=True)
class WebhookRequest:
    action: str
    contact_id: str | None
    email: str | None
    role: str | None
    send_notification: bool
    is_test: bool
    dedupe_key: str = ""
    dedupe_window: float = 0.0
    dedupe_waiting_only: bool = False  # only an earlier call that has not started yet makes this one a repeat


class _WebhookSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    wpf_action = fields.String(
        required=True,
        validate=validate.OneOf(list(ACTION_NAMES), error="unknown action; use one of: {choices}"),
        error_messages={"required": "wpf_action is required"},
    )
    role = fields.String(load_default=None, validate=validate.Regexp(ROLE_NAME, error="not a role name"))
    send_notification = fields.Boolean(load_default=False)
    contact_id = fields.String(load_default=None, validate=validate.Regexp(CONTACT_ID, error="not an Ortto contact id"))
    email = fields.Email(load_default=None, validate=validate.Length(max=254))
    is_test = fields.Boolean(load_default=False)

    @validates_schema
    def _someone(self, data: dict, **_: Any) -> None:
        if ACTION_NAMES.get(data.get("wpf_action") or "") == "test" or data.get("is_test"):
            return
        if not data.get("contact_id") and not data.get("email"):
            raise ValidationError("neither a contact id nor an email was given", "contact_id")

    @post_load
    def _build(self, data: dict, **_: Any) -> WebhookRequest:
        action = ACTION_NAMES[data["wpf_action"]]
        return WebhookRequest(
            action=action,
            contact_id=data["contact_id"],
            email=data["email"],
            role=data["role"],
            send_notification=data["send_notification"],
            is_test=action == "test" or data["is_test"],
        )


_SCHEMA = _WebhookSchema()  # built once: building a schema copies its fields, which costs more than a load


def read_webhook(
    params: Mapping[str, str], payload: dict[str, Any] | None, same_call_window: float = 120.0
) -> WebhookRequest:
    """Merge URL/form parameters with Ortto's payload (flat or nested ``contact``) and validate.

    The contact id comes from ``contact_id``, then ``contact.contact_id``, then the top-level
    ``id`` (WP Fusion's choice); the email from ``email``, then ``contact.email``. A call without
    Ortto's delivery ids is a redelivery if an identical one came within ``same_call_window`` s.
    Raises ``ValidationError``.
    """
    payload = payload or {}
    contact = found if isinstance(found := payload.get("contact"), dict) else {}
    activity = found if isinstance(found := payload.get("activity"), dict) else {}
    data = {
        "wpf_action": params.get("wpf_action"),
        "role": params.get("role"),
        "send_notification": params.get("send_notification"),
        "contact_id": _first(
            params.get("contact_id"), payload.get("contact_id"), contact.get("contact_id"), payload.get("id")
        ),
        "email": _first(params.get("email"), payload.get("email"), contact.get("email")),
        "is_test": activity.get("field_id") == ORTTO_TEST_EVENT,
    }
    call = _SCHEMA.load({key: value for key, value in data.items() if value not in (None, "")})
    key, window, waiting_only = _dedupe(call.action, params, payload, same_call_window)
    return replace(call, dedupe_key=key, dedupe_window=window, dedupe_waiting_only=waiting_only)


def _dedupe(
    action: str, params: Mapping[str, str], payload: dict[str, Any], same_call_window: float
) -> tuple[str, float, bool]:
    """What makes a redelivery of this call recognisable, for how long, and whether only while the
    earlier call waits.

    Ortto's journey calls carry ``campaign_id`` + ``contact_id`` + ``run_id`` (and ``shape_id``);
    activity calls carry ``webhook_id`` + the event ``id``. Without them, the whole call (less the
    access key) counts, for a short window, and only while the earlier call has not started: it
    reads the contact as Ortto holds it when it runs, so a repeat adds nothing then; once it has
    started, an identical call may carry a change it did not see (a tag removed after it was added).
    """
    run = [payload.get(k) for k in ("campaign_id", "contact_id", "run_id", "shape_id")]
    event = [payload.get(k) for k in ("webhook_id", "id")]
    if all(run[:3]):
        return _digest("run", action, *run), REDELIVERY_WINDOW, False
    if all(event):
        return _digest("event", action, *event), REDELIVERY_WINDOW, False
    query = {k: v for k, v in params.items() if k != "access_key"}
    return _digest("body", action, query, payload), same_call_window, True


def _digest(kind: str, *parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return f"{kind}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def _first(*values: Any) -> Any:
    return next((value for value in values if value not in (None, "")), None)


def describe(method: str, mimetype: str, names: list[str], payload: dict[str, Any] | None) -> str:
    """How a call came, for the console: method, body type, parameter names and the JSON body's
    keys (one level down for ``contact``), never a value; the access key's name only."""

    def listed(keys: Any) -> str:
        shown = ["".join(c if c.isprintable() else "?" for c in str(key))[:40] for key in list(keys)[:20]]
        return ", ".join(shown) + (", …" if len(keys) > 20 else "")

    parts = [f"{method} {mimetype or 'no body'}", f"parameters: {listed(sorted(set(names))) or '-'}"]
    if payload is not None:
        keys = [
            f"{key} {{{listed(value)}}}" if key == "contact" and isinstance(value, dict) else key
            for key, value in payload.items()
        ]
        parts.append(f"JSON keys: {listed(keys) or '-'}")
    return "; ".join(parts)[:1000]
