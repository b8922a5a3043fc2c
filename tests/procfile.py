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

from wpf_bridge.store import Store
from wpf_bridge.types import DONE, FAILED, SKIPPED

ROOT = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def process_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, **env, "PATH": path, **extra}


class Processes:
    """The Procfile's ``web`` and ``worker``, ``instances`` of each (each web on its own port),
    as separate process groups that can be killed and started again."""

    def __init__(self, env: dict[str, str], tmp_path: Path, instances: int = 1):
        self.names = {kind: [f"{kind}.{n}" for n in range(1, instances + 1)] for kind in ("web", "worker")}
        self.ports = {name: free_port() for name in self.names["web"]}
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports.values()]
        self.url = self.urls[0]
        self.logs = {}
        self.procs = {}
        self.env, self.tmp_path = env, tmp_path
        subprocess.run(["bash", "-c", procfile()["release"].strip()], cwd=tmp_path, env=process_env(env), check=True,
                       capture_output=True)  # as Heroku runs it before starting the new processes
        self.store = Store(env["DATABASE_URL"])
        for kind in self.names:
            self.start(kind)

    def start(self, kind: str) -> None:
        """Start (or restart) every instance of one Procfile process type, appending to its log."""
        for name in self.names[kind]:
            self.logs[name] = self.tmp_path / f"{name}.log"
            self.procs[name] = subprocess.Popen(
                ["bash", "-c", procfile()[kind].strip()], cwd=self.tmp_path,
                env=process_env(self.env, PORT=str(self.ports.get(name, self.env["PORT"]))),
                stdout=self.logs[name].open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
            )

    def kill(self, kind: str) -> None:
        """kill -9 every instance of the process type and everything they started."""
        for name in self.names[kind]:
            os.killpg(self.procs[name].pid, signal.SIGKILL)
            self.procs[name].wait(10)

    def up(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited: {self.logs[name].read_text()}")
        try:
            return all(requests.get(url + "/health", timeout=1).ok for url in self.urls)
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still booting its workers
            return False

    def wait_until_applied(self, delivery_ids: list[str]) -> None:
        """Poll the delivery store until each delivery has ended (done or skipped), failing on failure."""
        def ended():
            records = [self.store.deliveries.get(i) for i in delivery_ids]
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
