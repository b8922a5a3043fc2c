"""Settings: read once from the environment (and ``.env``), validated before anything starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values
from marshmallow import EXCLUDE, Schema, ValidationError, post_load, validate, validates_schema
from marshmallow import fields as mfields

from .fieldmap import FieldMap, FieldMapError, load_field_map

NEVER_GRANTED = "administrator"  # no webhook grants it, whatever the settings say

ORTTO_HOSTS = {
    "default": "https://api.ap3api.com",
    "eu": "https://api.eu.ap3api.com",
    "au": "https://api.au.ap3api.com",
}
DEFAULT_FIELD_MAP = "config/fields.toml"
ENV_FILE = "WPF_ENV_FILE"  # where the settings file is, when not ./.env (set by --env-file)
#: Values config/env.example ships with: a bridge still holding one was never configured.
PLACEHOLDERS = {
    "WPF_ACCESS_KEY": "change-me",
    "WPF_SECRET_KEY": "change-me",
    "WORDPRESS_URL": "wordpress.example.com",
    "WORDPRESS_APP_PASSWORD": "xxxxxxxx",
    "ORTTO_API_KEY": "your-ortto-private-api-key",
}


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names it, on one line."""


@dataclass(frozen=True)
class Settings:
    access_keys: tuple[str, ...] = field(repr=False)
    wordpress_url: str
    wordpress_user: str
    wordpress_app_password: str = field(repr=False)
    ortto_api_key: str = field(repr=False)
    ortto_api_url: str
    ortto_password_field: str | None
    default_role: str
    allowed_roles: frozenset[str]
    username_format: str
    send_welcome_email: bool
    field_map: FieldMap
    database_url: str
    secret_keys: tuple[str, ...] = field(repr=False)  # the first seals new passwords; all open them
    port: int
    bind: str  # where the web process listens: host:port (WPF_BIND)
    retry_horizon: float  # seconds after which transient failures stop being retried
    lease_seconds: float  # a claim's lease, renewed by its worker: a dead worker's deliveries are taken over after it
    stop_seconds: float  # how long a stopping worker lets running deliveries finish before handing them back
    worker_threads: int  # deliveries one worker process applies at once
    batch_size: int  # deliveries a worker thread claims and applies together, their WordPress requests batched
    ortto_rate_limit: float  # Ortto requests per second, per worker process
    same_call_seconds: float  # an identical call without Ortto's ids this soon is a redelivery
    key_failure_limit: int  # wrong access keys a client may send per minute before it gets 429
    trusted_proxies: int  # proxies in front of the web process whose X-Forwarded-For is believed
    keep_seconds: float  # finished deliveries older than this are deleted
    stall_seconds: float  # /ready fails when deliveries wait this long with nothing applied
    console_password: str | None = field(default=None, repr=False)  # the operator console is off without one
    console_session_seconds: float = 8 * 3600.0  # a console login lasts this long
    metrics_token: str | None = field(default=None, repr=False)  # /metrics is off without one
    metrics_dir: str | None = None  # where this host's processes share their figures (see metrics_folder.directory)
    json_logs: bool = False  # WPF_LOG_FORMAT=json
    alert_webhook: str | None = field(default=None, repr=False)  # Slack-compatible incoming webhook URL

    def placeholders(self) -> list[str]:
        """The settings that still hold config/env.example's placeholder values."""
        values = {
            "WPF_ACCESS_KEY": ",".join(self.access_keys),
            "WPF_SECRET_KEY": ",".join(self.secret_keys),
            "WORDPRESS_URL": self.wordpress_url,
            "WORDPRESS_APP_PASSWORD": self.wordpress_app_password,
            "ORTTO_API_KEY": self.ortto_api_key,
        }
        # honcho, which `make run` uses, drops the spaces from unquoted values
        return [name for name, placeholder in PLACEHOLDERS.items() if placeholder in values[name].replace(" ", "")]

    def placeholder_warning(self) -> str | None:
        """What to tell the operator of a service started on the template ``.env``, if it was."""
        left = self.placeholders()
        return (
            (
                f"settings still hold config/env.example's placeholders: {', '.join(left)}; edit {env_file()}, "
                "then run `wpf-bridge check`"
            )
            if left
            else None
        )

    def secrets(self) -> list[str]:
        """Values that must never be written to a log line."""
        database_password = urlsplit(self.database_url).password
        return [
            *self.access_keys,
            self.wordpress_app_password,
            self.ortto_api_key,
            *self.secret_keys,
            *([unquote(database_password)] if database_password else []),
            *[value for value in (self.console_password, self.metrics_token, self.alert_webhook) if value],
        ]


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _http_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("must be an http:// or https:// URL")


def _role_name(value: str) -> None:
    if not value.replace("_", "").replace("-", "").isalnum() or value.lower() != value:
        raise ValidationError(f"{value!r} is not a WordPress role name")
    if value == NEVER_GRANTED:
        raise ValidationError("administrator is never granted by a webhook")


def _keys(min_length: int):
    """A comma-separated list of keys (several allow rotation), each at least ``min_length`` long."""

    def check(value: str) -> None:
        keys = _csv(value)
        if not keys:
            raise ValidationError("is required")
        if any(len(key) < min_length for key in keys):
            raise ValidationError(f"each key must be at least {min_length} characters")

    return check


class _SettingsSchema(Schema):
    class Meta:
        unknown = EXCLUDE
        ordered = True

    access_keys = mfields.String(data_key="WPF_ACCESS_KEY", required=True, validate=_keys(8))
    wordpress_url = mfields.String(data_key="WORDPRESS_URL", required=True, validate=_http_url)
    wordpress_user = mfields.String(data_key="WORDPRESS_USER", required=True)
    wordpress_app_password = mfields.String(data_key="WORDPRESS_APP_PASSWORD", required=True)
    ortto_api_key = mfields.String(data_key="ORTTO_API_KEY", required=True)
    ortto_region = mfields.String(
        data_key="ORTTO_REGION", load_default="default", validate=validate.OneOf(list(ORTTO_HOSTS))
    )
    ortto_api_url = mfields.String(data_key="ORTTO_API_URL", load_default=None, validate=_http_url)
    ortto_password_field = mfields.String(
        data_key="ORTTO_PASSWORD_FIELD",
        load_default=None,
        validate=validate.Regexp(
            r"^str:cm:[A-Za-z0-9_-]+$", error="must be a custom text field id like str:cm:wp-password"
        ),
    )
    default_role = mfields.String(data_key="WPF_DEFAULT_ROLE", load_default="subscriber", validate=_role_name)
    allowed_roles = mfields.String(data_key="WPF_ALLOWED_ROLES", load_default="")
    username_format = mfields.String(
        data_key="WPF_USERNAME_FORMAT", load_default="email", validate=validate.OneOf(["email", "flname", "fnamenum"])
    )
    send_welcome_email = mfields.Boolean(data_key="WPF_SEND_WELCOME_EMAIL", load_default=False)
    field_map = mfields.String(data_key="WPF_FIELD_MAP", load_default=None)
    database_url = mfields.String(
        data_key="DATABASE_URL",
        load_default="sqlite:///wpf-bridge.db",
        validate=validate.Regexp(
            r"^(sqlite:///.+|postgres(ql)?://.+)",
            error="must be sqlite:///path/to/file.db or postgresql://user@host/db",
        ),
    )
    secret_keys = mfields.String(data_key="WPF_SECRET_KEY", required=True, validate=_keys(16))
    port = mfields.Integer(data_key="PORT", load_default=8000, validate=validate.Range(1, 65535))
    bind = mfields.String(
        data_key="WPF_BIND",
        load_default=None,
        validate=validate.Regexp(
            r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$",
            error="must be host:port, for example 127.0.0.1:8000 (loopback only) or 0.0.0.0:8000",
        ),
    )
    worker_threads = mfields.Integer(data_key="WPF_WORKER_THREADS", load_default=4, validate=validate.Range(1, 64))
    # at most what the companion plugin takes in one batch (clients.wordpress.MAX_WRITES)
    batch_size = mfields.Integer(data_key="WPF_BATCH_SIZE", load_default=50, validate=validate.Range(1, 50))
    ortto_rate_limit = mfields.Float(data_key="ORTTO_RATE_LIMIT", load_default=10.0, validate=validate.Range(0.1, 1000))
    same_call_seconds = mfields.Float(
        data_key="WPF_SAME_CALL_SECONDS", load_default=120.0, validate=validate.Range(0, 86400)
    )
    key_failure_limit = mfields.Integer(
        data_key="WPF_KEY_FAILURE_LIMIT", load_default=10, validate=validate.Range(1, 10000)
    )
    trusted_proxies = mfields.Integer(data_key="WPF_TRUSTED_PROXIES", load_default=0, validate=validate.Range(0, 5))
    lease_seconds = mfields.Float(
        data_key="WPF_LEASE_SECONDS", load_default=30.0, validate=validate.Range(min=3, max=3600)
    )
    stop_seconds = mfields.Float(
        data_key="WPF_STOP_SECONDS", load_default=20.0, validate=validate.Range(min=0, max=600)
    )
    stall_minutes = mfields.Float(
        data_key="WPF_STALL_MINUTES", load_default=15.0, validate=validate.Range(min=1, max=1440)
    )
    keep_days = mfields.Float(  # at least the 48 h in which Ortto's redeliveries are recognised
        data_key="WPF_KEEP_DAYS", load_default=30.0, validate=validate.Range(min=2, max=3650)
    )
    console_password = mfields.String(
        data_key="WPF_CONSOLE_PASSWORD",
        load_default=None,
        validate=validate.Length(min=12, error="must be at least 12 characters"),
    )
    console_session_hours = mfields.Float(
        data_key="WPF_CONSOLE_SESSION_HOURS", load_default=8.0, validate=validate.Range(min=0.01, max=24 * 30)
    )
    metrics_token = mfields.String(
        data_key="WPF_METRICS_TOKEN",
        load_default=None,
        validate=validate.Length(min=16, error="must be at least 16 characters"),
    )
    metrics_dir = mfields.String(data_key="WPF_METRICS_DIR", load_default=None)
    log_format = mfields.String(
        data_key="WPF_LOG_FORMAT", load_default="text", validate=validate.OneOf(["text", "json"])
    )
    alert_webhook = mfields.String(data_key="WPF_ALERT_WEBHOOK", load_default=None, validate=_http_url)
    retry_hours = mfields.Float(
        data_key="WPF_RETRY_HOURS", load_default=24.0, validate=validate.Range(min=0, min_inclusive=False, max=24 * 30)
    )

    @validates_schema
    def _roles(self, data: dict, **_: object) -> None:
        for role in _csv(data.get("allowed_roles", "")):
            try:
                _role_name(role)
            except ValidationError as exc:
                raise ValidationError(exc.messages, "WPF_ALLOWED_ROLES") from None

    @post_load
    def _build(self, data: dict, **_: object) -> Settings:
        try:
            field_map = _field_map(data["field_map"])
        except FieldMapError as exc:
            raise ValidationError(str(exc), "WPF_FIELD_MAP") from None
        return Settings(
            access_keys=tuple(_csv(data["access_keys"])),
            wordpress_url=data["wordpress_url"].rstrip("/"),
            wordpress_user=data["wordpress_user"],
            wordpress_app_password=data["wordpress_app_password"],
            ortto_api_key=data["ortto_api_key"],
            ortto_api_url=(data["ortto_api_url"] or ORTTO_HOSTS[data["ortto_region"]]).rstrip("/"),
            ortto_password_field=data["ortto_password_field"],
            default_role=data["default_role"],
            allowed_roles=frozenset(_csv(data["allowed_roles"])) | {data["default_role"]},
            username_format=data["username_format"],
            send_welcome_email=data["send_welcome_email"],
            field_map=field_map,
            database_url=data["database_url"],
            secret_keys=tuple(_csv(data["secret_keys"])),
            port=data["port"],
            bind=data["bind"] or f"0.0.0.0:{data['port']}",
            retry_horizon=data["retry_hours"] * 3600,
            lease_seconds=data["lease_seconds"],
            stop_seconds=data["stop_seconds"],
            trusted_proxies=data["trusted_proxies"],
            keep_seconds=data["keep_days"] * 86400,
            stall_seconds=data["stall_minutes"] * 60,
            worker_threads=data["worker_threads"],
            batch_size=data["batch_size"],
            ortto_rate_limit=data["ortto_rate_limit"],
            same_call_seconds=data["same_call_seconds"],
            key_failure_limit=data["key_failure_limit"],
            console_password=data["console_password"],
            console_session_seconds=data["console_session_hours"] * 3600,
            metrics_token=data["metrics_token"],
            metrics_dir=data["metrics_dir"],
            json_logs=data["log_format"] == "json",
            alert_webhook=data["alert_webhook"],
        )


def _field_map(path: str | None) -> FieldMap:
    if path is None:
        if not Path(DEFAULT_FIELD_MAP).is_file():
            return FieldMap()
        path = DEFAULT_FIELD_MAP
    return load_field_map(Path(path))


def env_file() -> Path:
    """The settings file: ``WPF_ENV_FILE`` if set (``--env-file``), else ``.env`` in the working directory."""
    return Path(os.environ.get(ENV_FILE) or ".env").absolute()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Validate settings from ``environ`` (default: the process environment, then the settings
    file for what the environment does not set)."""
    if environ is None:
        from_file = {k: v or "" for k, v in dotenv_values(env_file()).items()} if env_file().is_file() else {}
        environ = {**from_file, **{key: value for key, value in os.environ.items() if value.strip()}}
    present = {key: value for key, value in environ.items() if value.strip() != ""}
    try:
        return _SettingsSchema().load(present)
    except ValidationError as exc:
        name, messages = next(iter(exc.normalized_messages().items()))
        message = messages[0] if isinstance(messages, list) else messages
        if message == "Missing data for required field.":
            message = "is required"
        raise SettingsError(f"{name}: {message}") from None
