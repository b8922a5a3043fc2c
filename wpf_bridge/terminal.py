"""What the ``wpf-bridge`` command prints. Emails, names and answers from Ortto and WordPress
can carry escape sequences that would retitle, clear or rewrite an operator's terminal, so
every line goes out with its control characters escaped, as the logs write them."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .redact import printable
from .settings import Settings, SettingsError, env_file, load_settings


def say(*lines: str, err: bool = False) -> None:
    """Print each line to stdout (or stderr), its control characters escaped and visible: a
    newline inside a line too, so text from outside cannot forge a line of its own."""
    stream = sys.stderr if err else sys.stdout
    for line in lines:
        print(printable(line), file=stream)


def progress_console() -> Console:
    """A rich console on stderr for progress bars that reads no markup (``[bold]``), emoji code or
    highlighting into what it shows."""
    return Console(stderr=True, markup=False, emoji=False, highlight=False)


def progress_bar(console: Console) -> Progress:
    """A bar for following deliveries the worker applies: its description, done of all, time taken and left."""
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def settings_or_exit() -> Settings:
    """Load settings or stop the process with one line naming the bad setting and where settings were read."""
    try:
        return load_settings()
    except SettingsError as exc:
        where = ""
        if str(exc).endswith("is required"):
            found = "" if env_file().is_file() else ", which does not exist"
            where = (
                f" (settings come from the environment and from {env_file()}{found}; "
                "give another file with --env-file PATH)"
            )
        say(f"wpf-bridge: setting {exc}{where}", err=True)
        raise SystemExit(2) from None
