"""config/env.example and docs/settings.md say what wpf_bridge/settings.py declares, no more, no less."""
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
