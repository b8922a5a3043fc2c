"""The ``wpf-bridge`` command: run the web or worker process, check a set-up, read and replay
deliveries, install the WordPress plugin."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, companion, history, logs, redact
from .settings import ENV_FILE, Settings
from .terminal import say, settings_or_exit
from .types import CONTACT_ID, DELIVERY_ACTIONS, DIRECTIONS, FAILED, ROLE_NAME, STATUSES

if TYPE_CHECKING:
    from .store import Store
    from .types import Delivery

log = logging.getLogger("wpf_bridge")


def metrics_directory(settings: Settings) -> None:
    """Share this process's Prometheus figures with the other processes of this host."""
    from . import metrics_folder

    try:
        metrics_folder.prepare(metrics_folder.directory(settings.database_url, settings.metrics_dir))
    except (OSError, ValueError) as exc:
        say(f"wpf-bridge: {exc}", err=True)
        raise SystemExit(2) from None


def use_env_file(path: str | None) -> None:
    """``--env-file``: read settings from ``path`` and work in its folder, so that relative paths in
    it (``sqlite:///var/…``, ``config/fields.toml``) mean what they mean for the running service."""
    if not path:
        return
    file = Path(path).expanduser().absolute()
    if not file.is_file():
        say(f"wpf-bridge: --env-file {file}: no such file", err=True)
        raise SystemExit(2)
    os.environ[ENV_FILE] = str(file)
    os.chdir(file.parent)


def cmd_web(args: argparse.Namespace) -> int:
    from gunicorn.app.wsgiapp import run

    settings = settings_or_exit()
    if settings.metrics_token:  # before gunicorn imports wpf_bridge.web, which defines the figures
        metrics_directory(settings)
    open_store(settings.database_url).close()  # a schema behind this code: say so here, not in each worker
    sys.argv = ["gunicorn", "-c", "python:wpf_bridge.gunicorn_conf", "wpf_bridge.web:create_app()", *args.gunicorn_args]
    run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = settings_or_exit()
    if settings.metrics_token:  # before the figures are defined (by the imports below)
        metrics_directory(settings)
    from .worker import Worker

    logs.configure(settings.secrets(), settings.json_logs)
    if warning := settings.placeholder_warning():
        log.warning("%s", warning)
    store = open_store(settings.database_url)
    Worker(settings, store, threads=args.threads or settings.worker_threads).run()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from .store import migrate_store

    settings = settings_or_exit()
    applied = migrate_store(settings.database_url)
    for name in applied:
        say(f"applied migration {name}")
    say(f"delivery store ready{'' if applied else ', nothing to apply'}: {redact.url(settings.database_url)}")
    return 0


def cmd_plugin(args: argparse.Namespace) -> int:
    if not args.install:
        sys.stdout.write(companion.source())
        return 0
    try:
        target = companion.install(Path(args.install))
    except (OSError, ValueError) as exc:
        say(f"wpf-bridge: {exc}", err=True)
        return 1
    say(f"companion plugin {companion.version()} written to {target} (a must-use plugin: active at once)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import run_checks, webhook_urls

    settings = settings_or_exit()
    problems = run_checks(settings, say)
    base = args.url or f"http://127.0.0.1:{settings.port}"
    say(
        "",
        "Webhook URLs for Ortto (Data sources > Webhook)"
        + (": fix the problems above before you use them" if problems else ":"),
    )
    for action, url in webhook_urls(settings, base, settings.access_keys[0]):
        say(f"  {action:12} {url}")
    say("", "all checks passed" if not problems else f"{problems} problem{'s' if problems > 1 else ''} found")
    return 1 if problems else 0


def open_store(database_url: str | None = None) -> Store:
    """The store, or one line saying what to run and exit 2 when its schema is behind this code."""
    from .store import SchemaBehind, Store

    try:
        return Store(database_url or settings_or_exit().database_url)
    except SchemaBehind as exc:
        say(f"wpf-bridge: {exc}", err=True)
        raise SystemExit(2) from None


def _filters(args: argparse.Namespace) -> dict:
    try:
        since = history.parse_since(args.since) if args.since else None
    except ValueError as exc:
        say(f"wpf-bridge: {exc}", err=True)
        raise SystemExit(2) from None
    return {
        "status": getattr(args, "status", None),
        "email": args.email,
        "contact_id": args.contact,
        "since": since,
        "direction": args.to,
        "action": args.action,
    }


def _json_lines(data: object) -> list[str]:
    """``--json`` output as lines; every control character inside a value is already a JSON escape."""
    return json.dumps(data, indent=2).split("\n")


def cmd_deliveries(args: argparse.Namespace) -> int:
    store = open_store()
    found = store.deliveries.find(**_filters(args), limit=args.limit)
    if args.json:
        say(*_json_lines([history.as_json(d) for d in found]))
    elif found:
        say(history.HEADER)
        for delivery in found:
            say(history.line(delivery))
    else:
        say("no deliveries match", err=True)
    return 0


SHORTEST_ID = 6  # characters of a delivery id ``show`` needs (ids are 32)


def _by_id(store: Store, wanted: str) -> tuple[Delivery | None, str]:
    """The delivery whose id is or starts with ``wanted`` (``SHORTEST_ID`` characters at least), or why none."""
    if len(wanted) < SHORTEST_ID:
        return None, f"give at least {SHORTEST_ID} characters of the delivery id ({wanted!r} has {len(wanted)})"
    matches = store.deliveries.with_id_prefix(wanted)
    if len(matches) != 1:
        return None, f"{'no delivery' if not matches else f'{len(matches)} deliveries'} with an id starting {wanted!r}"
    return matches[0], ""


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store()
    delivery, why = _by_id(store, args.id)
    if delivery is None:
        say(f"wpf-bridge: {why}", err=True)
        return 2 if len(args.id) < SHORTEST_ID else 1
    attempts = store.history.of(delivery.id)
    say(*(_json_lines(history.as_json(delivery, attempts)) if args.json else history.whole(delivery, attempts)))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    store = open_store()
    filters = _filters(args)
    if args.ids and any(filters.values()):
        say("wpf-bridge: give delivery ids or filters, not both", err=True)
        return 2
    found = (
        [_by_id(store, wanted) for wanted in args.ids]
        if args.ids
        else [(d, "") for d in store.deliveries.find(**{**filters, "status": FAILED}, limit=None)]
    )
    replayed = 0
    if args.dry_run and found:
        say("a dry run: nothing is replayed", " " * len("would replay ") + history.HEADER)
    for wanted, (delivery, why) in zip(args.ids or [d.id for d, _ in found if d], found, strict=True):
        if delivery is None or delivery.status != FAILED:
            say(f"{wanted}: left alone ({why or f'it is {delivery and delivery.status}, not failed'})", err=True)
        elif args.dry_run:
            say(f"would replay {history.line(delivery)}")
            replayed += 1
        elif store.operators.requeue(delivery.id):
            say(f"replayed {history.line(store.deliveries.get(delivery.id) or delivery)}")  # as it waits now
            replayed += 1
    say(f"{'would replay' if args.dry_run else 'replayed'} {replayed} {'delivery' if replayed == 1 else 'deliveries'}")
    return 2 if any(len(wanted) < SHORTEST_ID for wanted in args.ids) else 0


def cmd_import(args: argparse.Namespace) -> int:
    from .importer import run_import

    return run_import(settings_or_exit(), args, open_store)


def cmd_export(args: argparse.Namespace) -> int:
    from .exporter import export

    return export(settings_or_exit(), args.role or "", args.dry_run, args.no_wait, open_store)


def cmd_preview(args: argparse.Namespace) -> int:
    from .errors import BridgeError
    from .preview import preview

    who = args.who.strip()
    if "@" not in who and not re.match(CONTACT_ID, who):
        say(f"wpf-bridge: {who!r} is neither an email nor an Ortto contact id", err=True)
        return 2
    settings = settings_or_exit()
    try:
        say(*preview(settings, who, args.action, args.role, args.notify))
    except BridgeError as exc:
        say(f"wpf-bridge: {exc}", err=True)
        return 2
    return 0


def _role(text: str) -> str:
    if not re.match(ROLE_NAME, text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a role name (lower-case letters, digits, - and _)")
    return text


def cmd_refused(args: argparse.Namespace) -> int:
    rows = open_store().refusals.by_reason()
    for reason, count, last in rows:
        say(f"{count:8}  last {history.when(last)}  {reason}")
    if not rows:
        say("no webhook has been refused")
    return 0


def _filter_options(parser: argparse.ArgumentParser, status: bool = True) -> None:
    if status:
        parser.add_argument("--status", choices=STATUSES, help="only deliveries in this status now")
    parser.add_argument(
        "--to", choices=DIRECTIONS, help="webhooks' deliveries (wordpress) or WordPress's changes (ortto)"
    )
    parser.add_argument("--action", choices=DELIVERY_ACTIONS, help="only this action's deliveries")
    parser.add_argument("--email", help="the delivery's email (any case)")
    parser.add_argument("--contact", help="the delivery's Ortto contact id")
    parser.add_argument("--since", help="arrived since: an age (30m, 2h, 7d) or a date (2026-11-28, 2026-11-28T13:00)")


def main(argv: list[str] | None = None) -> int:
    def env_file_option(default: object) -> argparse.ArgumentParser:
        options = argparse.ArgumentParser(add_help=False)
        options.add_argument(
            "--env-file",
            default=default,
            help="settings file (default: .env in the working "
            "directory); relative paths in it are read from its folder",
        )
        return options

    common = env_file_option(argparse.SUPPRESS)  # on a command too, without undoing one given before it
    parser = argparse.ArgumentParser(
        prog="wpf-bridge", description="Ortto webhooks to WordPress users.", parents=[env_file_option(None)]
    )
    parser.add_argument("--version", action="version", version=f"wpf-bridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", parents=[common])
        sub.set_defaults(func=func)
        return sub

    web = command("web", cmd_web, "run the webhook endpoint (gunicorn on WPF_BIND, default 0.0.0.0:$PORT)")
    web.add_argument("gunicorn_args", nargs=argparse.REMAINDER, help="extra gunicorn options")
    worker = command("worker", cmd_worker, "run the worker that applies deliveries")
    worker.add_argument("--threads", type=int, help="deliveries applied at once (default: WPF_WORKER_THREADS, 4)")
    check = command("check", cmd_check, "check WordPress, the companion plugin and Ortto; print webhook URLs")
    check.add_argument("--url", help="public URL of this bridge, for the printed webhook URLs")
    command("migrate", cmd_migrate, "create or upgrade the delivery store's tables (Heroku release step)")
    plugin = command("wordpress-plugin", cmd_plugin, "print the companion must-use plugin, or install it")
    plugin.add_argument("--install", metavar="WP_PATH", help="write it into WP_PATH/wp-content/mu-plugins/")
    deliveries = command("deliveries", cmd_deliveries, "list deliveries (newest first) and what became of them")
    _filter_options(deliveries)
    deliveries.add_argument("--limit", type=int, default=20, help="how many, newest first (default 20)")
    deliveries.add_argument("--json", action="store_true", help="as JSON, every field")
    show = command("show", cmd_show, "one delivery whole, with the history of its attempts")
    show.add_argument("id", help="a delivery id, or its first characters (at least 6)")
    show.add_argument("--json", action="store_true", help="as JSON, with its history")
    replay = command(
        "replay", cmd_replay, "run failed deliveries again (the ids given, or every failed one that matches)"
    )
    replay.add_argument("ids", nargs="*", help="delivery ids (default: every failed delivery matching the filters)")
    _filter_options(replay, status=False)
    replay.add_argument("--dry-run", action="store_true", help="say what would be replayed, change nothing")
    command("refused", cmd_refused, "count the webhooks refused, by reason")
    imports = command(
        "import", cmd_import, "give every Ortto contact carrying a tag their WordPress user (an add each)"
    )
    imports.description = (
        "Give every Ortto contact carrying a tag its WordPress user: pages through Ortto's people, then "
        "queues one add delivery per tagged contact (in one transaction) and follows the worker. Run it "
        "again after an interruption: nobody is queued twice."
    )
    imports.add_argument("--tag", required=True, help="the Ortto tag's exact name")
    imports.add_argument(
        "--role",
        help="role to give, as a webhook's role= does: to the users it creates, and to the "
        "existing ones it updates (one of WPF_ALLOWED_ROLES; without it, new users get WPF_DEFAULT_ROLE "
        "and existing ones keep theirs)",
    )
    imports.add_argument("--notify", action="store_true", help="send WordPress's welcome email to new users")
    imports.add_argument("--dry-run", action="store_true", help="count who would be created and updated; queue nothing")
    imports.add_argument("--filter", help="an Ortto person filter (JSON) to narrow the scan, as copied from Ortto")
    imports.add_argument("--no-wait", action="store_true", help="queue and return, without following the worker")

    previews = command("preview", cmd_preview, "what an action would do to a person, changing nothing")
    previews.add_argument("who", help="the person's email or Ortto contact id")
    previews.add_argument(
        "--action", choices=("add", "update", "update_tags"), default="add", help="the webhook's action (default add)"
    )
    previews.add_argument("--role", type=_role, help="the role the webhook URL would ask for (role=)")
    previews.add_argument("--notify", action="store_true", help="as with send_notification=true")
    exports = command("export", cmd_export, "push existing WordPress users to Ortto (merged by email) and link them")
    exports.add_argument("--role", help="only users with this WordPress role")
    exports.add_argument("--dry-run", action="store_true", help="count who would be pushed; record nothing")
    exports.add_argument("--no-wait", action="store_true", help="record and return, without following the worker")

    args = parser.parse_args(argv)
    use_env_file(args.env_file)
    try:
        return args.func(args)
    except BrokenPipeError:  # `wpf-bridge deliveries | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit fails no more
        return 141  # as a command killed by SIGPIPE
