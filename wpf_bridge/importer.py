"""``wpf-bridge import --tag NAME``: give every Ortto contact carrying a tag their WordPress user.

People who already carry the tag that starts a journey never trigger it, and WP Fusion's Ortto
module cannot import them (its ``load_contacts()`` returns nothing). Ortto documents no filter by
tag, so the import pages through ``person/get`` (500 a page, asking for the tags) and selects
locally; ``--filter`` narrows the scan with a filter copied from Ortto's People page.

The whole scan comes first: nothing is queued unless it completes (a refused key or a dead
network leaves the store untouched). Then every selected person becomes an ``add`` delivery, in
one transaction, with every guarantee of a webhook delivery. Each carries the key
``import:TAG:CONTACT``: running the import again, or after an interruption, queues only who is
not queued yet, and the worker never gives anyone a second user, email or password.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .accounts import Contact
from .clients.http import RateLimiter
from .clients.ortto import OrttoClient
from .clients.wordpress import MAX_LOOKUPS, PluginOutdated, WordPressClient
from .errors import BridgeError
from .roles import held_power
from .settings import Settings
from .store import Store
from .terminal import progress_bar, progress_console, say
from .types import DONE, FAILED, SKIPPED

ENDED = (DONE, SKIPPED, FAILED)
WATCH_EVERY = 0.5  # seconds between looks at the store while the worker drains the import


@dataclass(frozen=True)
class Selection:
    scanned: int
    pages: int
    people: list[Contact]


def select(ortto: OrttoClient, tag: str, where: dict | None, console: Console) -> Selection:
    """Page through Ortto and keep the contacts carrying ``tag`` (its exact name)."""
    scanned = pages = 0
    people: list[Contact] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("scanning Ortto", total=None)

        def waiting(seconds: float) -> None:
            progress.update(task, description=f"Ortto asks to wait {seconds:.0f} s (rate limit); page {pages + 1} next")

        for page in ortto.people(["str::email", "tags"], where=where, on_wait=waiting):
            pages += 1
            scanned += len(page)
            people += [contact for contact in page if tag in contact.tags]
            progress.update(
                task, description=f"scanning Ortto: {pages} pages, {scanned:,} people, {len(people):,} tagged {tag!r}"
            )
    console.print(f"scanned {scanned:,} people in {pages} page(s): {len(people):,} carry the tag {tag!r}")
    return Selection(scanned, pages, people)


@dataclass(frozen=True)
class Preview:
    """What an import would do, from one look-up per person (sent 100 to a request)."""

    create: int
    update: int
    privileged: int  # found, but never changed

    def describe(self, role: str | None, earlier: int) -> str:
        """What the import would do, in one line (``--dry-run``); ``earlier``: queued by an earlier run."""
        parts = [f"would create {self.create:,} users and update {self.update:,} existing ones"]
        if self.update:
            parts[0] += f" ({'their role set to ' + repr(role) if role else 'their role unchanged'})"
        if self.privileged:
            parts.append(f"{self.privileged:,} privileged (administrators and such) would be left alone")
        if earlier:
            parts.append(f"{earlier:,} of these were queued by an earlier run and would not be queued again")
        return "; ".join(parts) + " (a dry run: nothing was queued)"


def preview(wordpress: WordPressClient, people: list[Contact], grantable: frozenset[str]) -> Preview:
    """Look the people up in WordPress, changing nothing: ``--dry-run``. ``grantable``: the roles a
    webhook may grant; a user with any other, or with power, is left alone."""
    pairs = [(c.id, c.email) for c in people]
    try:
        found = [
            f
            for start in range(0, len(pairs), MAX_LOOKUPS)
            for f in wordpress.lookup_many(pairs[start : start + MAX_LOOKUPS])
        ]
    except PluginOutdated:
        found = [wordpress.lookup(*pair) for pair in pairs]
    users = [f.by_contact_id or f.by_email for f in found]
    held = sum(1 for user in users if user is not None and held_power(user, grantable))
    return Preview(sum(1 for user in users if user is None), len(users) - users.count(None) - held, held)


def import_key(tag: str, contact_id: str) -> str:
    """What makes a second import of the same person within ``WPF_KEEP_DAYS`` queue nothing."""
    return f"import:{tag}:{contact_id}"


def already_queued(store: Store, settings: Settings, tag: str, people: list[Contact]) -> int:
    """How many of ``people`` an earlier run of this import queued (a new run leaves them be)."""
    return len(store.ingest.keys_seen([import_key(tag, c.id) for c in people], settings.keep_seconds))


def queue(
    store: Store, settings: Settings, tag: str, people: list[Contact], role: str | None, notify: bool
) -> list[tuple[str, bool]]:
    """One ``add`` per person, all in one transaction; (delivery id, newly queued) for each."""
    calls = [("add", c.id, c.email, role, notify, import_key(tag, c.id)) for c in people]
    added = store.ingest.add_many(calls, window=settings.keep_seconds, shape=f"wpf-bridge import --tag {tag}")
    return [(delivery.id, new) for delivery, new in added]


def watch(store: Store, ids: list[str], console: Console) -> dict[str, int]:
    """Follow the deliveries until every one has ended, with a progress bar (rate and time left);
    return how many ended in each status."""
    with progress_bar(console) as progress:
        task = progress.add_task("applying", total=len(ids))
        while True:
            counts = store.deliveries.status_of(ids)
            ended = sum(counts.get(status, 0) for status in ENDED)
            progress.update(
                task,
                completed=ended,
                description=f"applied {counts.get(DONE, 0) + counts.get(SKIPPED, 0):,}"
                f", failed {counts.get(FAILED, 0):,}",
            )
            if ended >= len(ids):
                return counts
            time.sleep(WATCH_EVERY)


def run_import(settings: Settings, args: argparse.Namespace, open_store: Callable[[str], Store]) -> int:
    """The command: scan, then queue (or count, ``--dry-run``), then follow the worker; its exit status."""

    console = progress_console()
    if args.role and args.role not in settings.allowed_roles:
        say(
            f"wpf-bridge: --role {args.role}: not in WPF_ALLOWED_ROLES ({', '.join(sorted(settings.allowed_roles))})",
            err=True,
        )
        return 2
    try:
        where = json.loads(args.filter) if args.filter else None
    except ValueError as exc:
        say(f"wpf-bridge: --filter is not JSON: {exc}", err=True)
        return 2
    ortto = OrttoClient(settings.ortto_api_url, settings.ortto_api_key, limiter=RateLimiter(settings.ortto_rate_limit))
    try:
        selection = select(ortto, args.tag, where, console)
    except BridgeError as exc:
        say(f"wpf-bridge: Ortto: {exc}; nothing was queued", err=True)
        return 2
    except KeyboardInterrupt:
        say("wpf-bridge: interrupted during the scan; nothing was queued", err=True)
        return 130
    if not selection.people:
        say(
            f"wpf-bridge: no contact carries the tag {args.tag!r} (tags are matched by their exact name, as "
            "Ortto shows them); nothing was queued",
            err=True,
        )
        return 1
    if args.dry_run:
        wordpress = WordPressClient(settings.wordpress_url, settings.wordpress_user, settings.wordpress_app_password)
        earlier = already_queued(open_store(settings.database_url), settings, args.tag, selection.people)
        try:
            would = preview(wordpress, selection.people, settings.allowed_roles)
        except BridgeError as exc:
            say(f"wpf-bridge: WordPress: {exc}", err=True)
            return 2
        say(would.describe(args.role, earlier))
        return 0
    try:
        queued = queue(open_store(settings.database_url), settings, args.tag, selection.people, args.role, args.notify)
    except KeyboardInterrupt:
        say("wpf-bridge: interrupted while queueing; run the same command again (it queues nobody twice)", err=True)
        return 130
    try:
        new = sum(1 for _, is_new in queued if is_new)
        say(f"queued {new:,} add deliveries ({len(queued) - new:,} were queued by an earlier run)")
        if args.no_wait:
            return 0
        console.print("the worker applies them (`wpf-bridge worker` must run); Ctrl-C stops watching, not the import")
        counts = watch(open_store(settings.database_url), [delivery_id for delivery_id, _ in queued], console)
    except KeyboardInterrupt:
        say(
            "stopped watching; the deliveries stay queued and the worker applies them (run the same command "
            "again to follow them: it queues nobody twice)",
            err=True,
        )
        return 130
    say("; ".join(f"{status} {n:,}" for status, n in sorted(counts.items())))
    for status in (SKIPPED, FAILED):
        if counts.get(status):
            say(f"why: wpf-bridge deliveries --status {status}   (or the console's Deliveries page)")
    return 1 if counts.get(FAILED) else 0
