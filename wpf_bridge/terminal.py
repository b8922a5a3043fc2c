"""What the ``wpf-bridge`` command prints. Emails, names and answers from Ortto and WordPress
can carry escape sequences that would retitle, clear or rewrite an operator's terminal, so
every line goes out with its control characters escaped, as the logs write them."""

from __future__ import annotations

import sys

from rich.console import Console

from .redact import printable


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
