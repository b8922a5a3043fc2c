"""config/env.example, docs/settings.md and app.json say what wpf_bridge/settings.py declares, no more, no less."""
from __future__ import annotations

import pytest

from wpf_bridge import settings_files
from wpf_bridge.settings import FIELDS


@pytest.mark.parametrize("name", list(settings_files.files()))
def test_derived_file_matches_the_declarations(name):
    on_disk = (settings_files.ROOT / name).read_text()
    assert on_disk == settings_files.files()[name], (
        f"{name} differs from the declarations in wpf_bridge/settings.py: run `.venv/bin/{settings_files.COMMAND}`"
    )


def test_every_setting_is_in_both_files():
    for info in FIELDS.values():
        assert f"\n{info.validation_alias}=" in settings_files.env_example() or \
            f"\n#{info.validation_alias}=" in settings_files.env_example()
        assert f"| `{info.validation_alias}` |" in settings_files.reference()


def test_check_names_stale_files_and_writing_fixes_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(settings_files, "ROOT", tmp_path)
    assert settings_files.main(["--check"]) == 1
    assert "config/env.example differs from wpf_bridge/settings.py" in capsys.readouterr().out
    assert settings_files.main([]) == 0
    assert settings_files.main(["--check"]) == 0
    assert (tmp_path / "docs" / "settings.md").read_text() == settings_files.reference()


def test_app_json_deploys_the_procfile_with_postgresql_and_asks_for_every_required_setting():
    """Heroku's Deploy button (Dokku reads it too): what it asks for comes from the declarations."""
    import json

    from pydantic_core import PydanticUndefined

    from wpf_bridge.settings import load_settings

    app = json.loads((settings_files.ROOT / "app.json").read_text())
    declared = {info.validation_alias: info for info in FIELDS.values()}
    required = {name for name, info in declared.items() if info.default is PydanticUndefined}
    procfile = dict(line.split(":", 1) for line in (settings_files.ROOT / "Procfile").read_text().splitlines() if line)
    assert set(app["formation"]) == {"web", "worker"} and "release" in procfile  # Heroku runs release: migrate
    assert {"plan": "heroku-postgresql"} in app["addons"] and "DATABASE_URL" not in app["env"]
    assert set(app["env"]) <= set(declared), "app.json names a setting the bridge does not have"
    assert required <= set(app["env"]) and all(app["env"][name]["required"] for name in required)
    assert {name for name, entry in app["env"].items() if entry.get("generator") == "secret"} == {
        "WPF_ACCESS_KEY", "WPF_SECRET_KEY", "WPF_CONSOLE_PASSWORD"}
    assert app["success_url"] == "/console/", "the Deploy button ends on the console, which is on"
    assert "Reveal Config Vars" in app["env"]["WPF_CONSOLE_PASSWORD"]["description"]
    assert all(entry["description"].count("comma-separated") <= 1 for entry in app["env"].values())
    assert all(entry["description"] for entry in app["env"].values())
    generated = "0123456789abcdef" * 4  # what Heroku's secret generator makes: 64 hex characters
    values = {name: entry.get("value") or (generated if entry.get("generator") else "") for name, entry in app["env"].items()}
    filled = {**values, "WORDPRESS_URL": "https://shop.example.com", "WORDPRESS_USER": "bridge",
              "WORDPRESS_APP_PASSWORD": "abcd efgh ijkl mnop", "ORTTO_API_KEY": "key", "DATABASE_URL": "postgres://u@h/db"}
    deployed = load_settings(filled)
    assert deployed.trusted_proxies == 1 and deployed.console_password, "behind Heroku's router, the console on"
