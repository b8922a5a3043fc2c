"""``make demo`` works for a new user: its journey ends as it says, and it cleans up after itself."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_journey_runs_replays_and_removes_what_it_started():
    run = subprocess.run([sys.executable, str(ROOT / "demo" / "run.py"), "--self-test", "--port", "0"],
                         capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "self-test: passed" in out
    assert out.count(" done ") == 6 and "failed   Ortto has no contact with id" in out
    assert "/console/     password: demo-" in out and "Authorization: Bearer" in out
    webhook = next(line for line in out.splitlines() if line.startswith("Webhook "))
    assert "/?wpf_action=add&access_key=" in webhook and webhook.endswith("&role=customer&send_notification=true"), \
        "the add URL check and the console print"
    assert any(line.startswith("CLI ") and "--env-file" in line and line.split("--env-file ")[1].startswith("/")
               for line in out.splitlines()), "where the demo's settings are, for the CLI"
    folder = next(line.split("logs in ")[1].rstrip(")") for line in out.splitlines() if "logs in " in line)
    assert not Path(folder).exists(), "the demo's folder is removed"
