"""Settings: read once from the environment (and ``.env``), validated before anything starts.

Each setting is declared once, as a field of ``Settings``: its environment variable, type, default,
bounds, help and whether it is secret. Validation, error messages, ``config/env.example`` and
``docs/settings.md`` (``python -m wpf_bridge.settings_files``) all come from that declaration
(``declare.setting``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values
from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo

from .declare import HTTP_URL, Keys, Url, csv, env_name, extra, keys, message, one_of, pattern, rule, setting
from .fieldmap import FieldMap, load_field_map

NEVER_GRANTED = "administrator"  # no webhook grants it, whatever the settings say

ORTTO_HOSTS = {
    "default": "https://api.ap3api.com",
    "eu": "https://api.eu.ap3api.com",
    "au": "https://api.au.ap3api.com",
}
_REGIONS = ", ".join(f"`{region}` ({url.removeprefix('https://')})" for region, url in ORTTO_HOSTS.items())
DEFAULT_FIELD_MAP = "config/fields.toml"
ENV_FILE = "WPF_ENV_FILE"  # where the settings file is, when not ./.env (set by --env-file)

#: The sections of the settings reference and of config/env.example, and what each says first.
SECTIONS = {
    "Keys": "",
    "WordPress": "A user with an application password (Users > Profile > Application Passwords) named exactly "
    "wpf-bridge. The user needs list_users, create_users, edit_users and promote_users (an administrator has them).",
    "Ortto": "",
    "Users": "Who a webhook creates, and with which role.",
    "WordPress -> Ortto": "Changes made in WordPress that reach Ortto (the companion plugin 1.6.0+ records them "
    "in its outbox). The field map's [fields] and [meta] apply in reverse (never a password), and its [tag_roles] "
    "both ways.",
    "Deliveries": "Every webhook is kept as a delivery, which is also the queue.",
    "Worker": "",
    "Web": "",
    "Console, metrics, logs and alerts": "",
}


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names it, on one line."""


def _role_complaint(role: str) -> str | None:
    if not role.replace("_", "").replace("-", "").isalnum() or role.lower() != role:
        return f"{role!r} is not a WordPress role name"
    return "administrator is never granted by a webhook" if role == NEVER_GRANTED else None


_ROLE = rule(f"a WordPress role name, never {NEVER_GRANTED}", _role_complaint)
_ROLES = rule(
    f"WordPress role names, comma-separated, never {NEVER_GRANTED}",
    lambda roles: next(filter(None, map(_role_complaint, sorted(roles))), None),
)
_PASSWORD_FIELD = pattern(r"^str:cm:[A-Za-z0-9_-]+$", "a custom text field id like str:cm:wp-password")
_DATABASE_URL = pattern(r"^(sqlite:///.+|postgres(ql)?://.+)", "sqlite:///path/to/file.db or postgresql://user@host/db")
_ADMIN_PAGE = re.compile(r"/(wp-admin(/.*)?|wp-login\.php|wp-json(/.*)?)$", re.IGNORECASE)
_SITE_ADDRESS = rule(
    "the site's address, not a page of it",
    lambda url: (
        f"{url} is a page of the site, not its address: use {_ADMIN_PAGE.sub('', url) or url}"
        if _ADMIN_PAGE.search(urlsplit(url).path)
        else None
    ),
)
_HOST_PORT = pattern(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$", "host:port, for example 127.0.0.1:8000")


@dataclass(frozen=True, config=ConfigDict(validate_by_name=True, allow_inf_nan=False, extra="forbid"))
class Settings:
    """Every setting, validated. ``dataclasses.replace`` validates the changed copy again, and refuses
    a name that is not declared (``keep_seconds``: change ``keep_days``) instead of dropping it."""

    access_keys: Annotated[Keys, keys(8)] = setting(
        "WPF_ACCESS_KEY",
        section="Keys",
        secret=True,
        placeholder="change-me-to-a-long-random-key",
        help="The key in your Ortto webhook URLs (`?access_key=...`). Give several to rotate them: each is accepted.",
    )
    secret_keys: Annotated[Keys, keys(16)] = setting(
        "WPF_SECRET_KEY",
        secret=True,
        placeholder="change-me-to-another-long-random-key",
        help="Encrypts generated passwords while they wait to reach Ortto. To rotate, put a new key in front "
        "(`new,old`): the first seals, all open.",
    )
    wordpress_url: Annotated[Url, _SITE_ADDRESS] = setting(
        "WORDPRESS_URL",
        section="WordPress",
        placeholder="https://wordpress.example.com",
        help="The site's address (`https://example.com`, or with a sub-path).",
    )
    wordpress_user: str = setting("WORDPRESS_USER", example="bridge", help="The WordPress user the bridge acts as.")
    wordpress_app_password: str = setting(
        "WORDPRESS_APP_PASSWORD",
        secret=True,
        placeholder="xxxx xxxx xxxx xxxx xxxx xxxx",
        help="That user's application password, named `wpf-bridge` (Users > Profile > Application Passwords).",
    )
    ortto_api_key: str = setting(
        "ORTTO_API_KEY",
        section="Ortto",
        secret=True,
        placeholder="your-ortto-private-api-key",
        help="A private API key (Settings > Data sources > Custom API).",
    )
    ortto_region: Annotated[str, one_of(*ORTTO_HOSTS)] = setting(
        "ORTTO_REGION", "default", help=f"Your Ortto account's region, which picks the API host: {_REGIONS}."
    )
    ortto_api_url: Url = setting(
        "ORTTO_API_URL",
        None,
        validate_default=True,
        shown="from `ORTTO_REGION`",
        help="Overrides the Ortto API host that `ORTTO_REGION` picks.",
    )
    ortto_password_field: Annotated[str | None, _PASSWORD_FIELD] = setting(
        "ORTTO_PASSWORD_FIELD",
        None,
        example="str:cm:wp-password",
        help="Return Password: the Ortto custom text field that receives generated passwords.",
    )
    default_role: Annotated[str, _ROLE] = setting(
        "WPF_DEFAULT_ROLE",
        "subscriber",
        section="Users",
        help="The role of new users when a webhook's `role` is absent or not allowed.",
    )
    allowed_roles: Annotated[frozenset[str], _ROLES] = setting(
        "WPF_ALLOWED_ROLES",
        None,
        validate_default=True,
        shown="the default role",
        example="subscriber,customer",
        help="The roles a webhook may grant (the default role always). Any role that carries a privileged "
        "capability is refused too: see docs/security.md.",
    )
    username_format: Annotated[str, one_of("email", "flname", "fnamenum")] = setting(
        "WPF_USERNAME_FORMAT",
        "email",
        help="Usernames of new users: the email, `flname` (firstnamelastname) or `fnamenum` (firstname1, "
        "firstname2, ...).",
    )
    send_welcome_email: bool = setting(
        "WPF_SEND_WELCOME_EMAIL", False, help="Send the new-user email even without `send_notification=true`."
    )
    field_map: FieldMap = setting(
        "WPF_FIELD_MAP",
        None,
        validate_default=True,
        shown=f"`{DEFAULT_FIELD_MAP}`",
        example=DEFAULT_FIELD_MAP,
        help="The field map (see docs/configuration.md); the default file is used when it exists, else first and last name only.",
    )
    push_new_users: bool = setting(
        "WPF_PUSH_NEW_USERS",
        False,
        section="WordPress -> Ortto",
        help="Every user created in WordPress by anything but the bridge (a sign-up form, a checkout, wp-admin, a "
        "plugin) becomes an Ortto person, merged by email, and is linked to it.",
    )
    new_user_tags: Annotated[tuple[str, ...], BeforeValidator(csv)] = setting(
        "WPF_NEW_USER_TAGS",
        (),
        shown="none",
        example="Registered,From WordPress",
        help="Ortto tags applied to each user pushed as new, comma-separated.",
    )
    push_profile_changes: bool = setting(
        "WPF_PUSH_PROFILE_CHANGES",
        False,
        help="A change to a mapped field or to the email of a user linked to an Ortto person, by anyone, "
        "reaches that person (merged by person id: an email change moves the person).",
    )
    database_url: Annotated[str, _DATABASE_URL] = setting(
        "DATABASE_URL",
        "sqlite:///wpf-bridge.db",
        section="Deliveries",
        example="sqlite:///var/wpf-bridge.db",
        help="Where deliveries are kept: a SQLite file (`sqlite:////abs/path.db` for an absolute path) for one "
        "host, or PostgreSQL (`postgresql://user:password@host:5432/db`; Heroku's `postgres://` too) for any "
        "number of processes on any number of hosts. Its password is masked in logs and in `check`.",
    )
    retry_hours: Annotated[float, Field(gt=0, le=24 * 30)] = setting(
        "WPF_RETRY_HOURS",
        24.0,
        help="How long transient failures (peer down, 5xx, 429) are retried before a delivery fails.",
    )
    keep_days: Annotated[float, Field(ge=2, le=3650)] = setting(
        "WPF_KEEP_DAYS",
        30.0,
        help="Finished deliveries (done, skipped, failed) older than this are deleted by the worker, hourly (at "
        "least 2: Ortto's redeliveries are recognised for 48 h).",
    )
    same_call_seconds: Annotated[float, Field(ge=0, le=86400)] = setting(
        "WPF_SAME_CALL_SECONDS",
        120.0,
        help="A call without Ortto's delivery ids that repeats an earlier one (same action, parameters and body) "
        "this soon, while that one has not started, is a redelivery; 0 turns this off.",
    )
    worker_threads: Annotated[int, Field(ge=1, le=64)] = setting(
        "WPF_WORKER_THREADS",
        4,
        section="Worker",
        help="Worker threads in one worker process: deliveries applied at once, i.e. concurrent requests to "
        "WordPress (`wpf-bridge worker --threads N` overrides).",
    )
    # at most what the companion plugin takes in one batch (clients.wordpress.MAX_WRITES)
    batch_size: Annotated[int, Field(ge=1, le=50)] = setting(
        "WPF_BATCH_SIZE",
        50,
        help="Deliveries a worker thread applies together when several wait, their WordPress look-ups and writes "
        "sent as one request each (1: every request alone).",
    )
    batch_fill_ms: Annotated[int, Field(ge=0, le=2000)] = setting(
        "WPF_BATCH_FILL_MS",
        100,
        help="How long a small group waits at most for webhooks still arriving, so that a journey's burst is "
        "applied in full groups; a lone webhook waits one short look (0: never wait).",
    )
    ortto_rate_limit: Annotated[float, Field(ge=0.1, le=1000)] = setting(
        "ORTTO_RATE_LIMIT",
        10.0,
        help="Ortto requests per second from one worker process (Ortto's limit depends on the plan; divide it "
        "among the worker processes).",
    )
    lease_seconds: Annotated[float, Field(ge=3, le=3600)] = setting(
        "WPF_LEASE_SECONDS",
        30.0,
        help="A running delivery's lease, renewed by its worker every third of it while the worker lives, however "
        "long WordPress takes: a worker that dies or freezes loses its deliveries to another after this (on the "
        "same host, at once).",
    )
    stop_seconds: Annotated[float, Field(ge=0, le=600)] = setting(
        "WPF_STOP_SECONDS",
        20.0,
        help="On SIGTERM, how long a worker lets running deliveries finish before handing them back to the other "
        "workers and exiting 0; keep it under the platform's kill delay (Heroku and the systemd unit give 30 s).",
    )
    port: Annotated[int, Field(ge=1, le=65535)] = setting(
        "PORT", 8000, section="Web", example="8000", help="The web port."
    )
    bind: Annotated[str, _HOST_PORT] = setting(
        "WPF_BIND",
        None,
        validate_default=True,
        shown="`0.0.0.0:$PORT`",
        example="127.0.0.1:8000",
        help="Where the web process listens; `127.0.0.1:8000` serves loopback only (behind nginx on this host).",
    )
    web_concurrency: Annotated[int, Field(ge=1, le=128)] = setting(
        "WEB_CONCURRENCY", 2, help="Gunicorn worker processes (gunicorn also reads `GUNICORN_CMD_ARGS`)."
    )
    trusted_proxies: Annotated[int, Field(ge=0, le=5)] = setting(
        "WPF_TRUSTED_PROXIES",
        0,
        help="Proxies in front of the web process (nginx, Heroku's router: 1): the client address for the "
        "wrong-key limit is taken from their `X-Forwarded-For`. Behind a proxy, 0 makes every client share the "
        "proxy's address, and a few wrong keys from anyone would lock Ortto out.",
    )
    key_failure_limit: Annotated[int, Field(ge=1, le=10000)] = setting(
        "WPF_KEY_FAILURE_LIMIT",
        10,
        help="Wrong access keys one client address may send per minute before it is answered 429.",
    )
    stall_minutes: Annotated[float, Field(ge=1, le=1440)] = setting(
        "WPF_STALL_MINUTES",
        15.0,
        help="`/ready` answers 503 when deliveries have waited this long with none applied.",
    )
    console_password: str | None = setting(
        "WPF_CONSOLE_PASSWORD",
        None,
        min_length=12,
        secret=True,
        section="Console, metrics, logs and alerts",
        help="Turns on the operator console at `/console`.",
    )
    console_session_hours: Annotated[float, Field(ge=0.01, le=24 * 30)] = setting(
        "WPF_CONSOLE_SESSION_HOURS", 8.0, help="How long a console sign-in lasts."
    )
    metrics_token: str | None = setting(
        "WPF_METRICS_TOKEN",
        None,
        min_length=16,
        secret=True,
        help="Turns on `/metrics`, for `Authorization: Bearer <token>` only.",
    )
    metrics_dir: str | None = setting(
        "WPF_METRICS_DIR",
        None,
        shown="beside the SQLite file; on PostgreSQL `~/.local/state/wpf-bridge/metrics-…`",
        help="Where the processes of one host share their Prometheus figures.",
    )
    log_format: Annotated[str, one_of("text", "json")] = setting(
        "WPF_LOG_FORMAT", "text", help="`json`: one JSON object per line."
    )
    alert_webhook: Annotated[str | None, HTTP_URL] = setting(
        "WPF_ALERT_WEBHOOK",
        None,
        secret=True,
        help="A Slack-compatible incoming webhook URL for alerts of deliveries that failed for good.",
    )

    @field_validator("ortto_api_url", mode="before")
    @classmethod
    def _from_region(cls, url: str | None, info: ValidationInfo) -> str | None:
        """Unset: the host of ORTTO_REGION (declared before, so already validated)."""
        return url or ORTTO_HOSTS.get(info.data.get("ortto_region", ""))

    @field_validator("allowed_roles", mode="before")
    @classmethod
    def _with_default_role(cls, roles: Any, info: ValidationInfo) -> Any:
        """The default role is always one a webhook may grant."""
        return {*(csv(roles) or ()), *([info.data["default_role"]] if "default_role" in info.data else [])}

    @field_validator("field_map", mode="before")
    @classmethod
    def _field_map(cls, path: Any, info: ValidationInfo) -> FieldMap:
        """The file read and checked at start (unset: the default file, if there is one); a copy's map as it is.
        A linked role must be one a webhook may grant (``WPF_ALLOWED_ROLES``, declared before)."""
        if isinstance(path, FieldMap):
            return path
        if path is None and not Path(DEFAULT_FIELD_MAP).is_file():
            return FieldMap()
        loaded = load_field_map(Path(path or DEFAULT_FIELD_MAP))
        grantable = info.data.get("allowed_roles", frozenset())
        for tag, role in loaded.tag_roles.items():
            if role not in grantable:
                raise ValueError(
                    f"[tag_roles] {tag!r} = {role!r}: a linked role must be one a webhook may grant "
                    f"(add it to WPF_ALLOWED_ROLES, or link another role)"
                )
        return loaded

    @field_validator("bind", mode="before")
    @classmethod
    def _on_port(cls, bind: str | None, info: ValidationInfo) -> str | None:
        """Unset: every address, on PORT."""
        if bind or "port" not in info.data:
            return bind
        return f"0.0.0.0:{info.data['port']}"

    @property
    def retry_horizon(self) -> float:
        """Seconds after which transient failures stop being retried."""
        return self.retry_hours * 3600

    @property
    def batch_fill_seconds(self) -> float:
        return self.batch_fill_ms / 1000

    @property
    def keep_seconds(self) -> float:
        return self.keep_days * 86400

    @property
    def stall_seconds(self) -> float:
        return self.stall_minutes * 60

    @property
    def console_session_seconds(self) -> float:
        return self.console_session_hours * 3600

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json"

    def placeholders(self) -> list[str]:
        """The settings that still hold config/env.example's placeholder values."""
        held = {env: _text(getattr(self, _BY_ENV[env])) for env in PLACEHOLDERS}
        # honcho, which `make run` uses, drops the spaces from unquoted values
        return [env for env, placeholder in PLACEHOLDERS.items() if placeholder in held[env].replace(" ", "")]

    def placeholder_warning(self) -> str | None:
        """What to tell the operator of a service started on the template ``.env``, if it was."""
        if not (left := self.placeholders()):
            return None
        return (
            f"settings still hold config/env.example's placeholders: {', '.join(left)}; edit {env_file()}, "
            "then run `wpf-bridge check`"
        )

    @property
    def pushes(self) -> bool:
        """WordPress's changes reach Ortto: new users, profile changes, or roles linked to tags."""
        return self.push_new_users or self.push_profile_changes or bool(self.field_map.tag_roles)

    def secrets(self) -> list[str]:
        """Values that must never be written to a log line."""
        database_password = urlsplit(self.database_url).password
        declared = [getattr(self, name) for name, info in FIELDS.items() if not info.repr]
        return [
            *(value for held in declared for value in (held if isinstance(held, tuple) else [held]) if value),
            *([unquote(database_password)] if database_password else []),
        ]


def _text(value: Any) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


#: Each setting's declaration, by attribute name, in the order declared.
FIELDS: dict[str, FieldInfo] = Settings.__pydantic_fields__  # type: ignore[attr-defined]
#: Values config/env.example ships with: a bridge still holding one was never configured.
PLACEHOLDERS = {
    env_name(info): extra(info, "example").replace(" ", "") for info in FIELDS.values() if extra(info, "placeholder")
}
_BY_ENV = {env_name(info): name for name, info in FIELDS.items()}
_VALIDATE = TypeAdapter(Settings)


def env_file() -> Path:
    """The settings file: ``WPF_ENV_FILE`` if set (``--env-file``), else ``.env`` in the working directory."""
    return Path(os.environ.get(ENV_FILE) or ".env").absolute()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Validate settings from ``environ`` (default: the process environment, then the settings
    file for what the environment does not set)."""
    if environ is None:
        from_file = {k: v or "" for k, v in dotenv_values(env_file()).items()} if env_file().is_file() else {}
        environ = {**from_file, **{key: value for key, value in os.environ.items() if value.strip()}}
    present = {key: value for key, value in environ.items() if key in _BY_ENV and value.strip() != ""}
    try:
        return _VALIDATE.validate_python(present, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise SettingsError(message(exc.errors(include_input=False, include_url=False)[0], FIELDS)) from None
