"""The ``wpf-bridge`` command: run the web or worker process, check a set-up, print the plugin."""
from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import urlencode

from . import __version__, companion, redact
from .settings import Settings, SettingsError, load_settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def settings_or_exit() -> Settings:
    """Load settings or stop the process with one line naming the bad setting."""
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"wpf-bridge: setting {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_web(args: argparse.Namespace) -> int:
    from gunicorn.app.wsgiapp import run

    settings_or_exit()
    sys.argv = ["gunicorn", "-c", "python:wpf_bridge.gunicorn_conf", "wpf_bridge.web:create_app()", *args.gunicorn_args]
    run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .store import Store
    from .worker import Worker

    settings = settings_or_exit()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    redact.install(settings.secrets())
    store = Store(settings.database_url)
    Worker(settings, store, threads=args.threads or settings.worker_threads).run()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from .store import Store

    settings = settings_or_exit()
    Store(settings.database_url)
    print(f"delivery store ready: {redact.url(settings.database_url)}")
    return 0


def cmd_plugin(args: argparse.Namespace) -> int:
    sys.stdout.write(companion.source())
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import run_checks

    settings = settings_or_exit()
    problems = run_checks(settings, print)
    base = (args.url or f"http://localhost:{settings.port}").rstrip("/")
    print("\nWebhook URLs for Ortto (Data sources > Webhook)" + (": fix the problems above before you use them" if problems else ":"))
    for action, extra in (("add", {"role": settings.default_role, "send_notification": "true"}), ("update", {}), ("update_tags", {})):
        query = urlencode({"wpf_action": action, "access_key": settings.access_keys[0], **extra})
        print(f"  {action:12} {base}/?{query}")
    print(f"\n{'all checks passed' if not problems else f'{problems} problem(s) found'}")
    return 1 if problems else 0


def cmd_deliveries(args: argparse.Namespace) -> int:
    from datetime import datetime

    from .store import Store

    store = Store(settings_or_exit().database_url)
    for d in store.recent(args.limit):
        when = datetime.fromtimestamp(d.created_at).strftime("%Y-%m-%d %H:%M:%S")
        who = d.contact_id or d.email
        print(f"{when}  {d.id}  {d.action:11} {d.status:8} {who}  {d.result or ''}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .store import Store

    store = Store(settings_or_exit().database_url)
    replayed = 0
    for delivery_id in args.ids or store.failed_ids():
        if store.requeue(delivery_id):
            replayed += 1
        else:
            print(f"{delivery_id}: not a failed delivery; left alone", file=sys.stderr)
    print(f"replayed {replayed} deliveries")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wpf-bridge", description="Ortto webhooks to WordPress users.")
    parser.add_argument("--version", action="version", version=f"wpf-bridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    web = commands.add_parser("web", help="run the webhook endpoint (gunicorn on 0.0.0.0:$PORT)")
    web.add_argument("gunicorn_args", nargs=argparse.REMAINDER, help="extra gunicorn options")
    web.set_defaults(func=cmd_web)

    worker = commands.add_parser("worker", help="run the worker that applies deliveries")
    worker.add_argument("--threads", type=int, help="deliveries applied at once (default: WPF_WORKER_THREADS, 4)")
    worker.set_defaults(func=cmd_worker)

    check = commands.add_parser("check", help="check WordPress, the companion plugin and Ortto; print webhook URLs")
    check.add_argument("--url", help="public URL of this bridge, for the printed webhook URLs")
    check.set_defaults(func=cmd_check)

    migrate = commands.add_parser("migrate", help="create or upgrade the delivery store's tables (Heroku release step)")
    migrate.set_defaults(func=cmd_migrate)

    plugin = commands.add_parser("wordpress-plugin", help="print the companion must-use plugin for WordPress")
    plugin.set_defaults(func=cmd_plugin)

    deliveries = commands.add_parser("deliveries", help="list recent deliveries and what became of them")
    deliveries.add_argument("--limit", type=int, default=20)
    deliveries.set_defaults(func=cmd_deliveries)

    replay = commands.add_parser("replay", help="run failed deliveries again (all of them, or the ids given)")
    replay.add_argument("ids", nargs="*", help="delivery ids (default: every failed delivery)")
    replay.set_defaults(func=cmd_replay)

    args = parser.parse_args(argv)
    return args.func(args)
