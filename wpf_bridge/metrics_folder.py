"""Where the processes of one host share their Prometheus figures. Kept apart from ``metrics``:
this must run before prometheus_client is imported, which decides the mode at import."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ADVICE = "set WPF_METRICS_DIR to a folder of the service's own"


def directory(database_url: str, configured: str | None) -> Path:
    """Where this host's processes share their figures: ``WPF_METRICS_DIR``, else beside the SQLite
    file, else a folder named for the store in the user's state folder. Never the shared /tmp,
    where another local user could make the folder first; and nothing that differs between a
    login shell and a service (``XDG_RUNTIME_DIR``), so that every process of the store finds it."""
    if configured:
        return Path(configured)
    if database_url.startswith("sqlite:///"):
        return Path(database_url.removeprefix("sqlite:///")).absolute().parent / "metrics"
    where = urlsplit(database_url)  # named for the database, never for its password
    digest = hashlib.sha256(f"{where.hostname}:{where.port}{where.path}?{where.query}".encode()).hexdigest()[:12]
    return _state_folder() / "wpf-bridge" / f"metrics-{digest}"


def _state_folder() -> Path:
    """``$XDG_STATE_HOME``, else ``~/.local/state`` (on Heroku ``/app/.local/state``, the dyno's own)."""
    if os.environ.get("XDG_STATE_HOME"):
        return Path(os.environ["XDG_STATE_HOME"])
    try:
        return Path.home() / ".local" / "state"
    except RuntimeError:  # no HOME and no passwd entry (a container's arbitrary uid)
        raise ValueError(f"no home folder to keep the metrics folder in: {ADVICE}") from None


def prepare(folder: Path) -> None:
    """Turn on multiprocess mode in ``folder`` for this process and the ones it starts, and delete
    the files of processes that are gone (their counts restart from zero, which Prometheus expects)."""
    try:
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the metrics folder {folder} ({exc.strerror}): {ADVICE}") from None
    if not _private(folder):  # made first by someone else, say, or a link of theirs
        raise ValueError(
            f"the metrics folder {folder} must belong to this user and be private (mode 700): fix it, or {ADVICE}"
        )
    os.environ[MULTIPROC_ENV] = str(folder)
    for file in folder.glob("*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            file.unlink(missing_ok=True)


def _private(folder: Path) -> bool:
    """The folder, and the link to it if it is one, belong to this user; nobody else may enter it."""
    link, info = folder.lstat(), folder.stat()
    return link.st_uid == info.st_uid == os.getuid() and not info.st_mode & 0o077


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
