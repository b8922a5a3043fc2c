"""The real Procfile processes (gunicorn web + worker), started and killed the way a host would."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from waiting import wait_for
from wordpress_site import free_port

from wpf_bridge.store import DONE, FAILED, SKIPPED, Store, sqlite_path

ROOT = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def process_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, **env, "PATH": path, **extra}


class Processes:
    def __init__(self, env: dict[str, str], tmp_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logs = {}
        self.procs = {}
        self.env, self.tmp_path = env, tmp_path
        self.store = Store(sqlite_path(env["DATABASE_URL"]))
        for name in procfile():
            self.start(name)

    def start(self, name: str) -> None:
        """Start (or restart) one Procfile process, appending to its log."""
        self.logs[name] = self.tmp_path / f"{name}.log"
        self.procs[name] = subprocess.Popen(
            ["bash", "-c", procfile()[name].strip()], cwd=self.tmp_path, env=process_env(self.env, PORT=str(self.port)),
            stdout=self.logs[name].open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self, name: str) -> None:
        """kill -9 the process and everything it started."""
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(10)

    def up(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited: {self.logs[name].read_text()}")
        try:
            return requests.get(self.url + "/health", timeout=1).ok
        except requests.ConnectionError:
            return False

    def wait_until_applied(self, delivery_ids: list[str]) -> None:
        """Poll the delivery store until each delivery has ended (done or skipped), failing on failure."""
        def ended():
            records = [self.store.get(i) for i in delivery_ids]
            failed = [r.result for r in records if r and r.status == FAILED]
            assert not failed, failed
            return all(r and r.status in (DONE, SKIPPED) for r in records)

        wait_for(ended, 60, f"deliveries {delivery_ids} to be applied")

    def stop(self) -> dict[str, int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        return {name: proc.wait(30) for name, proc in self.procs.items()}

    def output(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs.values())
