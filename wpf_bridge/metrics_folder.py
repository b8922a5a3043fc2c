"""Where the processes of one host share their Prometheus figures. Kept apart from ``metrics``:
this must run before prometheus_client is imported, which decides the mode at import."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def directory(database_url: str, configured: str | None) -> Path:
    """Where this host's processes share their figures: ``WPF_METRICS_DIR``, else beside the SQLite
    file (systemd units give each service its own /tmp), else a folder in /tmp named for the store."""
    if configured:
        return Path(configured)
    if database_url.startswith("sqlite:///"):
        return Path(database_url.removeprefix("sqlite:///")).absolute().parent / "metrics"
    where = urlsplit(database_url)  # named for the database, never for its password
    digest = hashlib.sha256(f"{where.hostname}:{where.port}{where.path}?{where.query}".encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"wpf-bridge-metrics-{digest}"


def prepare(folder: Path) -> None:
    """Turn on multiprocess mode in ``folder`` for this process and the ones it starts, and delete
    the files of processes that are gone (their counts restart from zero, which Prometheus expects)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:  # made first by someone else, in /tmp say
        raise ValueError(f"the metrics folder {folder} must belong to this user and be private (mode 700): "
                         "fix it, or set WPF_METRICS_DIR to a folder of the service's own")
    os.environ[MULTIPROC_ENV] = str(folder)
    for file in folder.glob("*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
