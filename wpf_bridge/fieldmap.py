"""Which Ortto field feeds which WordPress user field or meta key, and how values are converted.

The map is a TOML file (``WPF_FIELD_MAP``) with up to three tables: ``[fields]`` and ``[meta]``,
each ``wordpress_name = "ortto-field-id"``, and ``[tag_roles]``, ``"Ortto tag" = "role"`` (linked
roles). Field names follow WP Fusion's (``user_email``, ``display_name``...) so an existing WP
Fusion field map can be copied over.
"""

from __future__ import annotations

import html
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: WP Fusion / ``wp_users`` names, and the key the WordPress REST API uses for each.
USER_FIELDS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "nickname": "nickname",
    "display_name": "name",
    "user_email": "email",
    "user_url": "url",
    "description": "description",
    "locale": "locale",
    "user_login": "username",
    "user_pass": "password",
}
#: Fields WordPress only accepts when the user is created; never pushed to Ortto (a password least of all).
CREATE_ONLY = {"user_login", "user_pass"}
#: User fields kept in the ``users`` row (the others are meta); ``user_email`` is pushed as the email itself.
ROW_FIELDS = {"display_name", "user_url"}
#: What WordPress stores HTML-encoded (its pre_user_* filters: kses, then &, < and > as entities):
#: pushed to Ortto, which holds plain text, decoded.
ENCODED_FIELDS = {"first_name", "last_name", "nickname", "display_name", "description"}
TEXT_LIMIT = 255  # characters in an Ortto text field
#: REST keys stored in ``wp_users`` columns this long at most. WordPress drops a longer value
#: silently (and a whole new user with it), so a value from a form is cut to fit instead.
COLUMN_LIMITS = {"name": 250, "url": 100}

#: Meta keys a webhook must never write: privileges on any site of a network (a blog prefix need
#: not end in "_"), sessions, WordPress's protected meta (application passwords) and the bridge's
#: own keys. The companion plugin refuses the same keys; this catches them when the map is loaded.
_FORBIDDEN_META = re.compile(r"(capabilities|user_level|session_tokens)$|^_|^ortto_(contact_id|tags)$|^wpf_bridge_")
_FIELD_ID = re.compile(r"^[a-z0-9]{2,4}:[a-z0-9]*:[A-Za-z0-9_-]+$")
_META_KEY = re.compile(r"^[a-z0-9_]{1,64}\Z")  # exactly what the companion plugin accepts
_ROLE = re.compile(r"^[a-z0-9_-]{1,64}\Z")  # a role's name as WordPress stores it

DEFAULT_FIELDS = {"first_name": "str::first", "last_name": "str::last"}


class FieldMapError(ValueError):
    """The field map file is unreadable or names something we cannot write."""


@dataclass(frozen=True)
class FieldMap:
    fields: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    meta: dict[str, str] = field(default_factory=dict)
    tag_roles: dict[str, str] = field(default_factory=dict)  # Ortto tag: the role it is linked to

    def ortto_fields(self) -> list[str]:
        """Every Ortto field the bridge must load for a contact (email and tags included)."""
        wanted = ["str::email", "str::first", "str::last", *self.fields.values(), *self.meta.values(), "tags"]
        return list(dict.fromkeys(wanted))

    def user_values(self, contact_fields: dict[str, Any], *, creating: bool) -> dict[str, str]:
        """WordPress REST user keys and string values taken from a contact's fields."""
        values = {}
        for name, field_id in self.fields.items():
            if name in CREATE_ONLY and not creating:
                continue
            value = to_text(contact_fields.get(field_id))
            if value is not None:
                key = USER_FIELDS[name]
                values[key] = value[: COLUMN_LIMITS[key]] if key in COLUMN_LIMITS else value
        whole = f"{values.get('first_name', '')} {values.get('last_name', '')}"
        if creating and "name" not in values and len(whole) > COLUMN_LIMITS["name"]:
            values["name"] = whole[: COLUMN_LIMITS["name"]]  # WordPress would make it "first last", too long to store
        return values

    def watched(self) -> tuple[list[str], list[str]]:
        """The ``users`` columns and meta keys whose changes are pushed to Ortto (for the outbox)."""
        columns = ["user_email", *(name for name in self.fields if name in ROW_FIELDS)]
        meta = [name for name in self.fields if name not in ROW_FIELDS | CREATE_ONLY | {"user_email"}]
        return columns, list(dict.fromkeys([*meta, *self.meta]))

    def pushed_values(self, columns: dict[str, str], meta: dict[str, str]) -> dict[str, Any]:
        """The map in reverse: Ortto field ids and typed values from a user's columns and meta. Empty
        values and values Ortto's field type cannot hold are left out; the email is not here, nor
        anything created once (``user_login``, ``user_pass``)."""
        values = {}
        wanted = [(name, columns if name in ROW_FIELDS else meta, f) for name, f in self.fields.items()]
        for source, held, field_id in [*wanted, *((key, meta, f) for key, f in self.meta.items())]:
            if source in CREATE_ONLY or source == "user_email" or field_id == "str::email":
                continue
            text = held.get(source, "")
            value = to_ortto(field_id, html.unescape(text) if source in ENCODED_FIELDS else text)
            if value is not None:
                values[field_id] = value
        return values

    def meta_values(self, contact_fields: dict[str, Any]) -> dict[str, str]:
        """Meta keys and values taken from a contact's fields; absent fields are left alone."""
        values = {}
        for key, field_id in self.meta.items():
            value = to_text(contact_fields.get(field_id))
            if value is not None:
                values[key] = value
        return values


def to_text(value: Any) -> str | None:
    """Ortto's typed values as the plain text WordPress stores; ``None`` when there is nothing."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict):
        if "n" in value:  # phn:: {"c": "61", "n": "401234567"}
            return f"+{value.get('c', '')}{value['n']}" if value.get("c") else str(value["n"])
        if "name" in value:  # geo:: {"name": "Sydney"}
            return str(value["name"])
        if {"year", "month", "day"} <= value.keys():  # dtz::
            return f"{value['year']:04d}-{value['month']:02d}-{value['day']:02d}"
        return None
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def to_ortto(field_id: str, text: str) -> Any:
    """WordPress's plain text as the value Ortto's field type holds (``to_text`` reversed); ``None``
    when there is nothing, or nothing that type can hold."""
    text = text.strip()
    kind = field_id.split(":", 1)[0]
    if not text:
        return None
    if kind == "bol":
        return text.lower() in ("1", "true", "yes", "on")
    if kind == "geo":
        return {"name": text[:TEXT_LIMIT]}
    if kind == "phn":
        return {"n": text[:TEXT_LIMIT]}
    if kind == "int":
        return int(text) if re.fullmatch(r"-?\d{1,15}", text) else None
    if kind == "dtz":
        date = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2}).*", text)
        return {"year": int(date[1]), "month": int(date[2]), "day": int(date[3]), "timezone": "UTC"} if date else None
    return text[:TEXT_LIMIT]


def load_field_map(path: Path) -> FieldMap:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FieldMapError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FieldMapError(f"{path} is not valid TOML: {exc}") from None
    unknown_tables = set(data) - {"fields", "meta", "tag_roles"}
    if unknown_tables:
        raise FieldMapError(
            f"{path}: unknown table [{sorted(unknown_tables)[0]}] (use [fields], [meta] and [tag_roles])"
        )
    fields = _table(data, "fields", path)
    meta = _table(data, "meta", path)
    for name in fields:
        if name not in USER_FIELDS:
            raise FieldMapError(
                f"{path}: [fields] {name} is not a WordPress user field ({', '.join(USER_FIELDS)}); put it under [meta]"
            )
    for key in meta:
        if not _META_KEY.match(key):
            raise FieldMapError(f"{path}: [meta] {key}: meta keys are lowercase letters, digits and _ (up to 64)")
        if _FORBIDDEN_META.search(key):
            raise FieldMapError(f"{path}: [meta] {key} may not be written by a webhook")
    return FieldMap(fields=fields, meta=meta, tag_roles=_tag_roles(data, path))


def _table(data: dict, name: str, path: Path) -> dict[str, str]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise FieldMapError(f"{path}: {name} must be a table")
    for key, field_id in table.items():
        if not isinstance(field_id, str) or not _FIELD_ID.match(field_id):
            raise FieldMapError(f"{path}: [{name}] {key} = {field_id!r} is not an Ortto field id like 'str:cm:name'")
    return dict(table)


def _tag_roles(data: dict, path: Path) -> dict[str, str]:
    table = data.get("tag_roles", {})
    if not isinstance(table, dict):
        raise FieldMapError(f"{path}: tag_roles must be a table")
    for tag, role in table.items():
        if not tag.strip() or len(tag) > 255:
            raise FieldMapError(f"{path}: [tag_roles] {tag!r}: a tag name is 1 to 255 characters")
        if not isinstance(role, str) or not _ROLE.match(role):
            raise FieldMapError(f"{path}: [tag_roles] {tag!r} = {role!r} is not a WordPress role name like 'customer'")
    return dict(table)
