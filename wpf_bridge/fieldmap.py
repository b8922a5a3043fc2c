"""Which Ortto field feeds which WordPress user field or meta key, and how values are converted.

The map is a TOML file (``WPF_FIELD_MAP``) with up to three tables: ``[fields]`` and ``[meta]``,
each ``wordpress_name = "ortto-field-id"``, and ``[tag_roles]``, ``"Ortto tag" = "role"`` (linked
roles). Field names follow WP Fusion's (``user_email``, ``display_name``...) so an existing WP
Fusion field map can be copied over.
"""

from __future__ import annotations

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
#: Fields WordPress only accepts when the user is created.
CREATE_ONLY = {"user_login", "user_pass"}
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
