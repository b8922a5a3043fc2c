"""Settings are validated once, and every bad one is named on one line."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from dotenv import dotenv_values
from pydantic import ValidationError

from wpf_bridge.declare import accepted, env_name
from wpf_bridge.fieldmap import FieldMap
from wpf_bridge.settings import FIELDS, ORTTO_HOSTS, PLACEHOLDERS, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
#: The required settings, with values that pass; no WordPress or Ortto is asked.
MINIMAL = {
    "WPF_ACCESS_KEY": "access-key-1,access-key-2",
    "WPF_SECRET_KEY": "a-secret-key-of-some-length",
    "WORDPRESS_URL": "https://wordpress.example.test/",
    "WORDPRESS_USER": "bridge",
    "WORDPRESS_APP_PASSWORD": "abcd efgh ijkl mnop qrst uvwx",
    "ORTTO_API_KEY": "an-ortto-api-key",
}
#: Settings that take any text: every other one refuses a value that is plainly wrong.
FREE_TEXT = {"WORDPRESS_USER", "WORDPRESS_APP_PASSWORD", "ORTTO_API_KEY", "WPF_METRICS_DIR", "WPF_NEW_USER_TAGS"}
NUMBERS = [info for info in FIELDS.values() if info.annotation in (int, float)]


def test_defaults(env):
    minimal = {k: env[k] for k in ("WPF_ACCESS_KEY", "WORDPRESS_URL", "WORDPRESS_USER", "WORDPRESS_APP_PASSWORD",
                                   "ORTTO_API_KEY", "WPF_SECRET_KEY")}
    settings = load_settings(minimal)
    assert settings.ortto_api_url == ORTTO_HOSTS["default"]
    assert settings.default_role == "subscriber" and settings.allowed_roles == {"subscriber"}
    assert settings.username_format == "email" and settings.send_welcome_email is False
    assert settings.ortto_password_field is None
    assert settings.database_url == "sqlite:///wpf-bridge.db" and settings.port == 8000
    assert settings.retry_horizon == 24 * 3600 and settings.keep_seconds == 30 * 86400
    assert settings.access_keys == tuple(env["WPF_ACCESS_KEY"].split(","))


def test_region_picks_the_host(env):
    env = {**env, "ORTTO_REGION": "eu"}
    del env["ORTTO_API_URL"]
    assert load_settings(env).ortto_api_url == "https://api.eu.ap3api.com"


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("WPF_ACCESS_KEY", "", "WPF_ACCESS_KEY: is required"),
        ("WPF_ACCESS_KEY", "short", "WPF_ACCESS_KEY: each key must be at least 8 characters"),
        ("WORDPRESS_URL", "ftp://x", "WORDPRESS_URL: must be an http:// or https:// URL"),
        ("WORDPRESS_APP_PASSWORD", " ", "WORDPRESS_APP_PASSWORD: is required"),
        ("ORTTO_REGION", "us", "ORTTO_REGION: must be default, eu or au"),
        ("ORTTO_PASSWORD_FIELD", "str::first", "ORTTO_PASSWORD_FIELD: must be a custom text field id"),
        ("WPF_DEFAULT_ROLE", "administrator", "WPF_DEFAULT_ROLE: administrator is never granted by a webhook"),
        ("WPF_ALLOWED_ROLES", "customer,administrator", "WPF_ALLOWED_ROLES: administrator is never granted"),
        ("WPF_ALLOWED_ROLES", "customer,Bad Role", "WPF_ALLOWED_ROLES: 'Bad Role' is not a WordPress role name"),
        ("WPF_USERNAME_FORMAT", "random", "WPF_USERNAME_FORMAT: must be email, flname or fnamenum"),
        ("WPF_SEND_WELCOME_EMAIL", "perhaps", "WPF_SEND_WELCOME_EMAIL: must be true or false"),
        ("WPF_FIELD_MAP", "/nonexistent.toml", "WPF_FIELD_MAP: cannot read /nonexistent.toml"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: must be sqlite:///path/to/file.db or postgresql://user@host/db"),
        ("WPF_SECRET_KEY", "tooshort", "WPF_SECRET_KEY: each key must be at least 16 characters"),
        ("WPF_SECRET_KEY", "a-long-enough-secret-key,short", "WPF_SECRET_KEY: each key must be at least 16 characters"),
        ("WPF_KEEP_DAYS", "1", "WPF_KEEP_DAYS: must be a number from 2 to 3650"),
        ("PORT", "99999", "PORT: must be a whole number from 1 to 65535"),
        ("WPF_RETRY_HOURS", "0", "WPF_RETRY_HOURS: must be a number over 0 and up to 720"),
    ],
)
def test_bad_setting_is_named(env, name, value, message):
    with pytest.raises(SettingsError) as error:
        load_settings({**env, name: value})
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_secrets_stay_out_of_repr(settings, env):
    text = repr(settings)
    for name in ("WPF_ACCESS_KEY", "WORDPRESS_APP_PASSWORD", "ORTTO_API_KEY", "WPF_SECRET_KEY"):
        for secret in env[name].split(","):
            assert secret not in text


def test_dotenv_file_is_read(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in env:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    monkeypatch.setattr("os.environ", {**__import__("os").environ})
    assert load_settings().wordpress_url == env["WORDPRESS_URL"]


def test_default_field_map_file_is_used_when_present(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "fields.toml").write_text('[fields]\nnickname = "str::first"\n')
    env = dict(env)
    del env["WPF_FIELD_MAP"]
    assert load_settings(env).field_map == FieldMap(fields={"nickname": "str::first"}, meta={})


@pytest.mark.parametrize("url", ["postgres://u:p@db.example.com:5432/d1", "postgresql://u:p@db.example.com:5432/d1"])
def test_database_url_takes_herokus_postgres_spelling(env, url):
    from wpf_bridge.store.database import connect

    settings = load_settings({**env, "DATABASE_URL": url})
    assert connect(settings.database_url).url == "postgresql://u:p@db.example.com:5432/d1"


def test_derived_values_come_from_the_settings_they_depend_on():
    settings = load_settings({**MINIMAL, "PORT": "9000", "ORTTO_REGION": "au", "WPF_LOG_FORMAT": "json"})
    assert settings.bind == "0.0.0.0:9000" and settings.web_concurrency == 2
    assert settings.ortto_api_url == ORTTO_HOSTS["au"] and settings.wordpress_url == "https://wordpress.example.test"
    assert settings.access_keys == ("access-key-1", "access-key-2") and settings.json_logs
    assert settings.stall_seconds == 15 * 60 and settings.console_session_seconds == 8 * 3600
    assert load_settings({**MINIMAL, "WPF_BIND": "127.0.0.1:8001", "PORT": "9000"}).bind == "127.0.0.1:8001"


@pytest.mark.parametrize("info", NUMBERS, ids=env_name)
def test_every_number_is_bounded_and_refused_outside_its_bounds(info):
    bounds = {type(item).__name__: getattr(item, type(item).__name__.lower(), None) for item in info.metadata}
    assert "Le" in bounds and ("Ge" in bounds or "Gt" in bounds), f"{env_name(info)} declares no bounds"
    step = 1 if info.annotation is int else 0.001
    low = bounds["Gt"] if "Gt" in bounds else bounds["Ge"] - step
    for value in (low, bounds["Le"] + step, "many"):
        with pytest.raises(SettingsError) as error:
            load_settings({**MINIMAL, env_name(info): str(value)})
        assert str(error.value) == f"{env_name(info)}: must be {accepted(info)}"
    for value in (bounds.get("Ge", low + step), bounds["Le"]):
        load_settings({**MINIMAL, env_name(info): str(value)})


@pytest.mark.parametrize("info", FIELDS.values(), ids=env_name)
def test_every_setting_but_free_text_refuses_a_wrong_value_by_name(info):
    name = env_name(info)
    if name in FREE_TEXT:
        assert not accepted(info)
        load_settings({**MINIMAL, name: "X"})
        return
    with pytest.raises(SettingsError) as error:
        load_settings({**MINIMAL, name: "X"})
    assert str(error.value).startswith(f"{name}: ") and "\n" not in str(error.value)


@pytest.mark.parametrize("name", list(MINIMAL))
def test_every_required_setting_is_named_when_missing(name):
    with pytest.raises(SettingsError, match=f"^{name}: is required$"):
        load_settings({**MINIMAL, name: " "})


SECRETS = {
    **MINIMAL,
    "WPF_CONSOLE_PASSWORD": "console-Zq9-password",
    "WPF_METRICS_TOKEN": "metrics-Zq9-token-0123",
    "WPF_ALERT_WEBHOOK": "https://hooks.example.test/Zq9",
}


@pytest.mark.parametrize("info", [info for info in FIELDS.values() if not info.repr], ids=env_name)
def test_secrets_stay_out_of_repr_and_error_messages(info):
    name = env_name(info)
    settings = load_settings(SECRETS)
    for secret in SECRETS[name].split(","):
        assert secret in settings.secrets() and secret not in repr(settings)
    if name not in FREE_TEXT:
        with pytest.raises(SettingsError) as error:
            load_settings({**SECRETS, name: "Zq9!"})
        assert "Zq9" not in str(error.value)


def test_a_changed_copy_is_validated_again():
    settings = load_settings(MINIMAL)
    copy = dataclasses.replace(settings, send_welcome_email=True)
    assert copy.send_welcome_email and copy.access_keys == settings.access_keys and copy.bind == settings.bind
    with pytest.raises(ValidationError):
        dataclasses.replace(settings, default_role="administrator")
    with pytest.raises(ValidationError, match="keep_seconds"):  # worked out from keep_days: not dropped silently
        dataclasses.replace(settings, keep_seconds=60)


def test_the_template_s_placeholders_are_recognised():
    template = {name: value or "" for name, value in dotenv_values(ROOT / "config" / "env.example").items()}
    assert load_settings(template).placeholders() == list(PLACEHOLDERS)
    assert load_settings({**template, **MINIMAL}).placeholders() == []


@pytest.mark.parametrize("table, message", [
    ('[tag_roles]\n"Paid" = "editor"\n',
     "WPF_FIELD_MAP: [tag_roles] 'Paid' = 'editor': a linked role must be one a webhook may grant"),
    ('[tag_roles]\n"Paid" = "Bad Role"\n', "is not a WordPress role name like 'customer'"),
    ('[tag_roles]\n"" = "customer"\n', "[tag_roles] '': a tag name is 1 to 255 characters"),
    ('[roles]\n"Paid" = "customer"\n', "unknown table [roles] (use [fields], [meta] and [tag_roles])"),
])
def test_linked_roles_must_be_roles_a_webhook_may_grant(env, tmp_path, table, message):
    path = tmp_path / "fields.toml"
    path.write_text(table)
    with pytest.raises(SettingsError) as error:
        load_settings({**env, "WPF_FIELD_MAP": str(path), "WPF_ALLOWED_ROLES": "customer,member"})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_linked_roles_are_read_from_the_field_map(env, tmp_path):
    path = tmp_path / "fields.toml"
    path.write_text('[tag_roles]\n"Paid" = "customer"\n"Club member" = "member"\n')
    settings = load_settings({**env, "WPF_FIELD_MAP": str(path), "WPF_ALLOWED_ROLES": "customer,member"})
    assert settings.field_map.tag_roles == {"Paid": "customer", "Club member": "member"}
