"""``wpf-bridge export``: push the WordPress users who were there before WordPress -> Ortto was on.

The companion plugin walks the users by id, a page per request, and records each one not linked to
an Ortto person yet (nor made by the bridge) in its outbox as an ``export`` change; the worker pulls
and pushes those like any other change: merged by email (never a second person), then linked. So an
interrupted export is simply run again: who was linked meanwhile is left out, and who is recorded
twice is merged into the same person. ``--dry-run`` counts, recording nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from .clients.wordpress import WordPressClient
from .errors import BridgeError
from .settings import Settings
from .store import Search, Store
from .terminal import progress_bar, progress_console, say
from .types import DONE, FAILED, OUTBOX_KINDS, SKIPPED
from .worker.outbox import OutboxPuller

ACTION = OUTBOX_KINDS["export"]
ENDED = (DONE, SKIPPED, FAILED)
WATCH_EVERY = 0.5  # seconds between looks at the store while the worker pushes the export


@dataclass(frozen=True)
class Walk:
    users: int  # users walked (of the role, if one was given)
    export: int  # of them, not linked to an Ortto person: recorded (or, in a dry run, would be)


def walk(wordpress: WordPressClient, role: str, dry_run: bool, console: Console) -> Walk:
    """Ask the plugin to record every unlinked user, a page at a time, showing how far it got."""
    users = export = after = 0
    with console.status("walking WordPress's users") as status:
        while True:
            page = wordpress.outbox_export(after, role, dry_run)
            users += int(page["users"])
            export += int(page["export"])
            after = int(page["last"])
            status.update(f"walking WordPress's users: {users:,} so far, {export:,} not linked to Ortto yet")
            if not page["more"]:
                return Walk(users, export)


def follow(store: Store, since: float, expected: int, console: Console) -> dict[str, int]:
    """Follow the exported users' deliveries until ``expected`` have ended; how many ended in each status."""
    with progress_bar(console) as progress:
        task = progress.add_task("pushing", total=expected)
        while True:
            counts = {s: store.deliveries.count(Search(action=ACTION, since=since, status=s)) for s in ENDED}
            ended = sum(counts.values())
            progress.update(
                task,
                completed=min(ended, expected),
                description=f"pushed {counts[DONE]:,}, left alone {counts[SKIPPED]:,}, failed {counts[FAILED]:,}",
            )
            if ended >= expected:
                return counts
            time.sleep(WATCH_EVERY)


def export(settings: Settings, role: str, dry_run: bool, no_wait: bool, open_store: Callable[[str], Store]) -> int:
    """The command: record, then follow the worker's pushes (unless ``no_wait``); its exit status."""
    console = progress_console()
    if not settings.pushes:
        say(
            "wpf-bridge: WordPress -> Ortto is off: set WPF_PUSH_NEW_USERS or WPF_PUSH_PROFILE_CHANGES (or link roles "
            "to tags in [tag_roles]) first; the worker pulls what export records only then",
            err=True,
        )
        return 2
    wordpress = WordPressClient(settings.wordpress_url, settings.wordpress_user, settings.wordpress_app_password)
    store = open_store(settings.database_url)
    started = time.time()
    try:
        OutboxPuller(settings, store, wordpress).watch()  # names the bridge's user, as the worker does
        walked = walk(wordpress, role, dry_run, console)
    except BridgeError as exc:
        say(f"wpf-bridge: WordPress: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        say("wpf-bridge: interrupted; run the same command again (who is linked meanwhile is left out)", err=True)
        return 130
    of_role = f" with the role {role!r}" if role else ""
    linked = walked.users - walked.export
    if dry_run:
        say(
            f"{walked.users:,} users{of_role}: {walked.export:,} would be pushed to Ortto (merged by email) and "
            f"linked, {linked:,} are linked already or were made by the bridge (a dry run: nothing was recorded)"
        )
        return 0
    say(f"recorded {walked.export:,} of {walked.users:,} users{of_role} for Ortto ({linked:,} are linked already)")
    if no_wait or not walked.export:
        return 0
    console.print("the worker pushes them (`wpf-bridge worker` must run); Ctrl-C stops watching, not the export")
    try:
        counts = follow(store, started, walked.export, console)
    except KeyboardInterrupt:
        say("stopped watching; the worker pushes the rest (`wpf-bridge deliveries` shows them)", err=True)
        return 130
    say("; ".join(f"{status} {n:,}" for status, n in sorted(counts.items())))
    if counts.get(FAILED):
        say(f"why: wpf-bridge deliveries --status {FAILED}   (or the console's Deliveries page)")
    return 1 if counts.get(FAILED) else 0
