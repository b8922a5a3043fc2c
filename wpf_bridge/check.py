"""``wpf-bridge check``: can this bridge reach and use WordPress and Ortto as configured, safely?"""
from __future__ import annotations

from typing import Callable

from . import companion, redact
from .errors import BridgeError
from .ortto import OrttoClient
from .roles import SiteRoles
from .settings import Settings
from .store import Store
from .wordpress import WordPressClient, WordPressError

NEEDED_CAPABILITIES = ("list_users", "create_users", "edit_users", "promote_users")
CREDENTIAL = "wpf-bridge"  # the application password name the companion plugin trusts with the bridge's own meta


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
    except WordPressError as exc:
        if exc.status != 403:
            report(False, f"WordPress at {settings.wordpress_url}: {exc}")
        else:  # the plugin's routes need list_users: say what the user lacks
            _report_capabilities(report, settings.wordpress_user, wordpress.me().capabilities)
    except BridgeError as exc:
        report(False, f"WordPress at {settings.wordpress_url}: {exc}")
    else:
        report(True, f"WordPress {status['wordpress_version']} at {settings.wordpress_url}")
        _report_plugin(report, status["plugin_version"])
        _report_capabilities(report, status["user"], {cap for cap, granted in status["capabilities"].items() if granted})
        report(bool(status.get("bridge_credential")),
               f"signed in with the application password named {CREDENTIAL!r}" if status.get("bridge_credential") else
               f"the application password in WORDPRESS_APP_PASSWORD is not named {CREDENTIAL!r}: the companion plugin "
               f"lets only that one write the bridge's own meta (ortto_contact_id, ortto_tags); create one named "
               f"{CREDENTIAL!r} under Users > Profile > Application Passwords and use it")
        _report_roles(report, settings, SiteRoles.from_status(status))

    try:
        OrttoClient(settings.ortto_api_url, settings.ortto_api_key).check_key()
        report(True, f"Ortto API key accepted by {settings.ortto_api_url}")
    except BridgeError as exc:
        report(False, f"Ortto at {settings.ortto_api_url}: {exc}")

    say(
        "[ok] Return Password: " + (f"generated passwords go to Ortto field {settings.ortto_password_field}"
                                    if settings.ortto_password_field else "off (ORTTO_PASSWORD_FIELD is not set)")
    )
    say(_proxy_note(settings.trusted_proxies, settings.key_failure_limit))
    email_field = settings.field_map.fields.get("user_email")
    if email_field and email_field != "str::email":
        say(f"[note] user_email comes from {email_field}: whoever fills in an Ortto form with someone's email can set "
            "that field, and with it the login email of a user linked to that contact; map it from str::email")
    return problems


def _report_plugin(report: Callable[[bool, str], None], installed: str) -> None:
    shipped = companion.version()
    if installed == shipped:
        report(True, f"companion plugin {installed}")
    elif _version(installed) < _version(shipped):
        report(False, f"companion plugin {installed} is outdated and unsafe: any logged-in user of the site could "
                      f"grant themselves capabilities through it; install {shipped} now "
                      "(`wpf-bridge wordpress-plugin > wp-content/mu-plugins/wpf-bridge.php`)")
    else:
        report(False, f"companion plugin {installed} is newer than this bridge's {shipped}: upgrade the bridge")


def _report_capabilities(report: Callable[[bool, str], None], user: str, granted: set[str] | frozenset[str]) -> None:
    missing = [cap for cap in NEEDED_CAPABILITIES if cap not in granted]
    report(not missing, f"user {user} can {', '.join(NEEDED_CAPABILITIES)}" + (f" (missing: {', '.join(missing)})" if missing else ""))


def _report_roles(report: Callable[[bool, str], None], settings: Settings, roles: SiteRoles) -> None:
    """Every role a webhook may grant must exist and carry no power."""
    refused = []
    for role in sorted(settings.allowed_roles):
        why = roles.refusal(role)
        if why:
            setting = "WPF_DEFAULT_ROLE" if role == settings.default_role else "WPF_ALLOWED_ROLES"
            refused.append(f"{role} ({setting}): {why}")
    allowed = ", ".join(sorted(settings.allowed_roles))
    report(not refused, f"roles a webhook may grant exist and carry no privileged capability: {allowed}" if not refused else
           "roles a webhook may not grant: " + "; ".join(refused) + "; remove them from the setting")


def _proxy_note(trusted_proxies: int, limit: int) -> str:
    if trusted_proxies:
        return (f"[note] WPF_TRUSTED_PROXIES={trusted_proxies}: the client address is read from X-Forwarded-For, "
                f"{trusted_proxies} hop(s) back; without that many proxies in front, clients could fake their address")
    return (f"[note] WPF_TRUSTED_PROXIES=0: wrong keys are counted per client address ({limit} a minute). Behind a "
            "reverse proxy (nginx, Heroku's router) every client shares the proxy's address, so a few wrong keys "
            "from anyone would lock Ortto out: set it to the number of proxies in front of the bridge")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in text.split("."))
