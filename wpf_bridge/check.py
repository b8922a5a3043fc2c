"""``wpf-bridge check``: can this bridge reach and use WordPress and Ortto as configured?"""
from __future__ import annotations

from typing import Callable

from . import companion, redact
from .errors import BridgeError
from .ortto import OrttoClient
from .settings import Settings
from .store import Store
from .wordpress import WordPressClient

NEEDED_CAPABILITIES = ("list_users", "create_users", "edit_users", "promote_users")


def run_checks(settings: Settings, say: Callable[[str], None]) -> int:
    """Print one line per check; return how many failed."""
    problems = 0

    def report(ok: bool, text: str) -> None:
        nonlocal problems
        problems += not ok
        say(f"[{'ok' if ok else 'FAIL'}] {text}")

    try:
        Store(settings.database_url)
        report(True, f"delivery store {redact.url(settings.database_url)}")
    except (BridgeError, OSError) as exc:
        report(False, f"delivery store {redact.url(settings.database_url)}: {exc}")

    wordpress = WordPressClient(settings.wordpress_url, settings.wordpress_user, settings.wordpress_app_password)
    try:
        status = wordpress.status()
    except BridgeError as exc:
        report(False, f"WordPress at {settings.wordpress_url}: {exc}")
    else:
        report(True, f"WordPress {status['wordpress_version']} at {settings.wordpress_url}")
        current = status["plugin_version"] == companion.version()
        report(current, f"companion plugin {status['plugin_version']}" + ("" if current else
               f" (this bridge needs {companion.version()}: `wpf-bridge wordpress-plugin > wp-content/mu-plugins/wpf-bridge.php`)"))
        missing = [cap for cap in NEEDED_CAPABILITIES if not status["capabilities"].get(cap)]
        report(not missing, f"user {status['user']} can {', '.join(NEEDED_CAPABILITIES)}" + (f" (missing: {', '.join(missing)})" if missing else ""))
        unknown = sorted(settings.allowed_roles - set(status["roles"]))
        report(not unknown, "roles exist: " + ", ".join(sorted(settings.allowed_roles)) + (f" (not on the site: {', '.join(unknown)})" if unknown else ""))

    try:
        OrttoClient(settings.ortto_api_url, settings.ortto_api_key).check_key()
        report(True, f"Ortto API key accepted by {settings.ortto_api_url}")
    except BridgeError as exc:
        report(False, f"Ortto at {settings.ortto_api_url}: {exc}")

    say(
        "[ok] Return Password: " + (f"generated passwords go to Ortto field {settings.ortto_password_field}"
                                    if settings.ortto_password_field else "off (ORTTO_PASSWORD_FIELD is not set)")
    )
    return problems
