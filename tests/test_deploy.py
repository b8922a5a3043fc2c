"""The files for running the bridge beside WordPress without Heroku: systemd units and nginx."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy").glob("*.service"))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    """Each unit, with /opt/wpf-bridge pointing at a real install (this venv), verifies clean:
    no unknown key, no missing program, the migrate unit that web and worker require found."""
    home = tmp_path / "opt"
    (home / "var").mkdir(parents=True)
    (home / ".venv" / "bin").mkdir(parents=True)
    os.symlink(Path(sys.executable).parent / "wpf-bridge", home / ".venv" / "bin" / "wpf-bridge")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    for unit in UNITS:
        text = unit.read_text().replace("/opt/wpf-bridge", str(home))
        text = text.replace("User=wpf-bridge", f"User={user}").replace("Group=wpf-bridge", f"Group={user}")
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", *[f"./{u.name}" for u in UNITS]], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_units_run_the_procfile_processes_and_nginx_matches_the_bridge_settings():
    commands = {unit.stem: next(line.split("/")[-1] for line in unit.read_text().splitlines()
                                if line.startswith("ExecStart=")) for unit in UNITS}
    assert commands == {"wpf-bridge-migrate": "wpf-bridge migrate", "wpf-bridge-web": "wpf-bridge web",
                        "wpf-bridge-worker": "wpf-bridge worker"}
    procfile = (ROOT / "Procfile").read_text()
    assert all(f": {command}" in procfile for command in commands.values())
    nginx = (ROOT / "deploy" / "nginx-wpf-bridge.conf").read_text()
    assert "proxy_pass http://127.0.0.1:8000;" in nginx and "WPF_BIND=127.0.0.1:8000" in nginx
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx and "WPF_TRUSTED_PROXIES=1" in nginx
    assert "$request_uri" not in nginx.split("log_format")[1].split(";")[0], "the access log leaves the key out"
