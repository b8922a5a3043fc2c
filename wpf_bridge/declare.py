"""How a setting is declared: one pydantic field that carries its environment variable, help,
secrecy and what config/env.example shows, with the rules it must pass. Error messages, the
settings reference and env.example read the same field, so none of them can drift from it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonDict
from pydantic_core import ErrorDetails, PydanticUndefined


@dataclass(frozen=True)
class Rule:
    """A check beyond type and bounds. ``accepted`` says what passes, in error messages and in the
    settings reference; ``complaint`` says why a value does not pass (``None``: it does)."""

    accepted: str
    complaint: Callable[[Any], str | None]

    def __call__(self, value: Any) -> Any:
        if value is not None and (why := self.complaint(value)):
            raise ValueError(why)
        return value


def rule(accepted: str, complaint: Callable[[Any], str | None]) -> AfterValidator:
    """A rule to put in a setting's ``Annotated`` type."""
    return AfterValidator(Rule(accepted, complaint))


def must(accepted: str, passes: Callable[[Any], object]) -> AfterValidator:
    """A rule whose complaint is always ``must be <accepted>``."""
    return rule(accepted, lambda value: None if passes(value) else f"must be {accepted}")


def pattern(regex: str, accepted: str) -> AfterValidator:
    """A rule for text that must match ``regex``; ``accepted`` says so in words (a regex is no help to an operator)."""
    return must(accepted, re.compile(regex).match)


def one_of(*choices: str) -> AfterValidator:
    """A rule for text that must be one of ``choices``, which the message and the reference list."""
    return must(f"{', '.join(choices[:-1])} or {choices[-1]}", lambda value: value in choices)


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def csv(value: Any) -> Any:
    """A comma-separated value's items; anything else (a copy's tuple) as it is."""
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


def keys(min_length: int) -> AfterValidator:
    """Several keys, comma-separated, allow rotation; each must be long enough."""

    def complaint(given: tuple[str, ...]) -> str | None:
        if not given:
            return "is required"
        return f"each key must be at least {min_length} characters" if min(map(len, given)) < min_length else None

    return rule(f"keys of {min_length}+ characters, comma-separated", complaint)


HTTP_URL = must("an http:// or https:// URL", _is_http_url)
Url = Annotated[str, HTTP_URL, AfterValidator(lambda url: url.rstrip("/"))]
Keys = Annotated[tuple[str, ...], BeforeValidator(csv)]


def setting(
    env: str,
    default: Any = PydanticUndefined,
    *,
    help: str,
    secret: bool = False,
    example: str | None = None,
    placeholder: str | None = None,
    shown: str | None = None,
    section: str | None = None,
    **bounds: Any,
) -> Any:
    """Declare one setting (no default: it is required). ``example``: what config/env.example shows
    (else the default); ``placeholder``: an example that must be replaced before the bridge is used;
    ``shown``: the default in words, where it is worked out; ``section``: the setting starts it."""
    shows = {"example": placeholder or example, "placeholder": placeholder is not None}
    extra: JsonDict = {**shows, "shown": shown, "section": section}
    return Field(default, validation_alias=env, description=help, repr=not secret, json_schema_extra=extra, **bounds)


def env_name(info: FieldInfo) -> str:
    """The environment variable a setting is read from: what messages and files name it by."""
    return str(info.validation_alias)


def extra(info: FieldInfo, key: str) -> Any:
    """What ``setting()`` declared beside pydantic's own: example, placeholder, shown or section."""
    return info.json_schema_extra[key]  # type: ignore[index]


def accepted(info: FieldInfo) -> str:
    """What a setting takes, in words ("" for any text): errors say it, and the reference shows it."""
    found = {type(item).__name__: item for item in info.metadata}
    rules = [item.func.accepted for item in info.metadata if isinstance(getattr(item, "func", None), Rule)]
    if "MinLen" in found:
        return f"at least {found['MinLen'].min_length} characters"
    if info.annotation is bool:
        return "true or false"
    if info.annotation in (int, float):
        kind = "a whole number" if info.annotation is int else "a number"
        low = f"over {found['Gt'].gt:g} and up" if "Gt" in found else f"from {found['Ge'].ge:g}"
        return f"{kind} {low} to {found['Le'].le:g}"
    return rules[0] if rules else ""


def message(error: ErrorDetails, fields: dict[str, FieldInfo]) -> str:
    """One line naming the setting and what is wrong with it, never the value given (a secret, perhaps)."""
    by_env = {env_name(info): info for info in fields.values()}
    name = str(error["loc"][0]) if error["loc"] else ""
    info = by_env.get(name) or fields.get(name)
    if error["type"] == "missing":
        why = "is required"
    elif error["type"] == "value_error":
        why = str(error.get("ctx", {})["error"])
    elif info and accepted(info):
        why = f"must be {accepted(info)}"
    else:
        why = error["msg"]
    return " ".join(f"{env_name(info) if info else name}: {why}".split())
