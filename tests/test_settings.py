"""Settings are validated once, and every bad one is named on one line."""
from __future__ import annotations

import pytest

from wpf_bridge.fieldmap import FieldMap
from wpf_bridge.settings import ORTTO_HOSTS, SettingsError, load_settings


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
        ("ORTTO_REGION", "us", "ORTTO_REGION: Must be one of: default, eu, au."),
        ("ORTTO_PASSWORD_FIELD", "str::first", "ORTTO_PASSWORD_FIELD: must be a custom text field id"),
        ("WPF_DEFAULT_ROLE", "administrator", "WPF_DEFAULT_ROLE: administrator is never granted by a webhook"),
        ("WPF_ALLOWED_ROLES", "customer,administrator", "WPF_ALLOWED_ROLES: administrator is never granted"),
        ("WPF_ALLOWED_ROLES", "customer,Bad Role", "WPF_ALLOWED_ROLES: 'Bad Role' is not a WordPress role name"),
        ("WPF_USERNAME_FORMAT", "random", "WPF_USERNAME_FORMAT: Must be one of"),
        ("WPF_SEND_WELCOME_EMAIL", "perhaps", "WPF_SEND_WELCOME_EMAIL: Not a valid boolean."),
        ("WPF_FIELD_MAP", "/nonexistent.toml", "WPF_FIELD_MAP: cannot read /nonexistent.toml"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: must be sqlite:///path/to/file.db or postgresql://user@host/db"),
        ("WPF_SECRET_KEY", "tooshort", "WPF_SECRET_KEY: each key must be at least 16 characters"),
        ("WPF_SECRET_KEY", "a-long-enough-secret-key,short", "WPF_SECRET_KEY: each key must be at least 16 characters"),
        ("WPF_KEEP_DAYS", "1", "WPF_KEEP_DAYS: Must be greater than or equal to 2"),
        ("PORT", "99999", "PORT: Must be greater than or equal to 1"),
        ("WPF_RETRY_HOURS", "0", "WPF_RETRY_HOURS: Must be greater than 0"),
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
