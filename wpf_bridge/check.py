"""``wpf-bridge check``: can this bridge reach and use WordPress and Ortto as configured, safely?"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

from . import companion, redact
from .clients.ortto import BUILT_IN_FIELDS, OrttoClient
from .clients.wordpress import WordPressClient, WordPressError
from .errors import BridgeError
from .history import ago
from .roles import SiteRoles
from .settings import DEFAULT_FIELD_MAP, Settings, env_file
from .store import Store
from .store.figures import ALIVE_WITHIN
from .store.outbound import PULLED

NEEDED_CAPABILITIES = ("list_users", "create_users", "edit_users", "promote_users")
CREDENTIAL = "wpf-bridge"  # the application password name the companion plugin trusts with the bridge's own meta
TEXT_TYPES = {"text", "long_text", "string"}  # Ortto display types a password can be written to
UNCHECKED = "the companion plugin, the user's capabilities and the roles are checked once WordPress answers"


class Report:
    """Prints one line per check (``[ok]``, ``[FAIL]`` or ``[note]``) and counts the failures."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.problems = 0

    def check(self, ok: bool, text: str) -> None:
        self.problems += not ok
        self.say(f"[{'ok' if ok else 'FAIL'}] {text}")

    def note(self, text: str) -> None:
        self.say(f"[note] {text}")


def run_checks(settings: Settings, say: Callable[[str], None]) -> int:
    """Print one line per check; return how many failed."""
    report = Report(say)
    for name in settings.placeholders():
        report.check(False, f"{name} still holds config/env.example's placeholder: set it in {env_file()}")
    _check_store(report, settings)
    _check_wordpress(report, settings)
    _check_ortto(report, settings)
    _notes(report, settings)
    return report.problems


def _check_store(report: Report, settings: Settings) -> None:
    where = f"delivery store {redact.url(settings.database_url)}"
    try:
        store = Store(settings.database_url)
    except (BridgeError, OSError) as exc:
        report.check(False, f"{where}: {exc}")
        return
    try:
        report.check(True, where)
        beat = store.figures.last_beat()
        if time.time() - (beat or 0.0) >= ALIVE_WITHIN:  # a note: checking before the first start is no mistake
            report.note(
                f"no worker is alive (last heartbeat: {ago(beat)}): webhooks are stored, and applied once one "
                "runs (`make run`, or the Procfile's worker)"
            )
    finally:
        store.close()


def _check_wordpress(report: Report, settings: Settings) -> None:
    if {"WORDPRESS_URL", "WORDPRESS_APP_PASSWORD"} & set(settings.placeholders()):
        report.note("WordPress not checked until WORDPRESS_URL and WORDPRESS_APP_PASSWORD are set")
        return
    wordpress = WordPressClient(settings.wordpress_url, settings.wordpress_user, settings.wordpress_app_password)
    try:
        status = wordpress.status()
    except WordPressError as exc:
        if exc.status != 403:
            report.check(False, f"WordPress at {settings.wordpress_url}: {exc}")
            report.note(UNCHECKED)
        else:  # the plugin's routes need list_users: say what the user lacks
            _check_capabilities(report, settings.wordpress_user, wordpress.me().capabilities)
        return
    except BridgeError as exc:
        report.check(False, f"WordPress at {settings.wordpress_url}: {exc}")
        report.note(UNCHECKED)
        return
    report.check(True, f"WordPress {status['wordpress_version']} at {settings.wordpress_url}")
    current = _check_plugin(report, status["plugin_version"])
    if settings.pushes:
        _check_outbox(report, settings, wordpress, status["plugin_version"])
    _check_capabilities(report, status["user"], {cap for cap, granted in status["capabilities"].items() if granted})
    if not current:  # an older plugin reports neither the credential nor what each role can do
        report.note("the application password's name and the roles are checked once the plugin is current")
        return
    report.check(
        bool(status.get("bridge_credential")),
        f"signed in with the application password named {CREDENTIAL!r}"
        if status.get("bridge_credential")
        else f"the application password in WORDPRESS_APP_PASSWORD is not named {CREDENTIAL!r}: the companion "
        "plugin lets only that one write the bridge's own meta (ortto_contact_id, ortto_tags); create one "
        f"named {CREDENTIAL!r} under Users > Profile > Application Passwords and use it",
    )
    _check_roles(report, settings, SiteRoles.from_status(status))


OUTBOX_SINCE = (1, 6, 0)  # older companion plugins record no change for Ortto


def _check_outbox(report: Report, settings: Settings, wordpress: WordPressClient, installed: str) -> None:
    """With WordPress -> Ortto on: the plugin records changes, and a worker pulls them in time."""
    pushed = [
        what
        for what, on in (
            ("new users", settings.push_new_users),
            ("profile changes", settings.push_profile_changes),
            ("linked roles", bool(settings.field_map.tag_roles)),
        )
        if on
    ]
    if _version(installed) < OUTBOX_SINCE:
        report.check(
            False,
            f"companion plugin {installed} is outdated: it records no change for Ortto, so {', '.join(pushed)} "
            f"do not reach Ortto until you install {companion.version()} "
            "(`wpf-bridge wordpress-plugin --install /path/to/wordpress`)",
        )
        return
    try:
        _, behind, oldest = wordpress.outbox_pull(1)  # WordPress's own count: right whether a worker runs or not
    except WordPressError as exc:
        if exc.status == 403:  # the first worker to start names the bridge's user
            report.note(f"WordPress -> Ortto ({', '.join(pushed)}): WordPress records nothing until a worker starts")
        else:
            report.check(False, f"WordPress's outbox: {exc}")
        return
    except BridgeError as exc:
        report.check(False, f"WordPress's outbox: {exc}")
        return
    late = behind and time.time() - oldest > settings.stall_minutes * 60
    pulled = _last_pull(settings)
    report.check(
        not late,
        f"WordPress -> Ortto ({', '.join(pushed)}): {_changes(behind)} waiting in WordPress's outbox, {pulled}"
        if not late
        else f"WordPress's outbox holds {_changes(behind)}, the oldest made {ago(oldest)}, {pulled}: is a "
        "worker running, and can it reach WordPress?",
    )


def _last_pull(settings: Settings) -> str:
    try:
        store = Store(settings.database_url)
    except (BridgeError, OSError):
        return "the store cannot say when a worker last pulled it"  # and the store's own line says why
    try:
        pulled = store.marks.get(PULLED)
    finally:
        store.close()
    return f"last pulled {ago(pulled)}" if pulled else "never pulled by a worker yet"


def _changes(count: int) -> str:
    return f"{count} change{'' if count == 1 else 's'}"


SAFE_SINCE = (1, 2, 0)  # older companion plugins let any logged-in user grant themselves capabilities
JUDGES_POWER_SINCE = (1, 4, 0)  # older ones cannot report power held on other sites or granted by plugins


def _check_plugin(report: Report, installed: str) -> bool:
    shipped = companion.version()
    install = f"install {shipped} (`wpf-bridge wordpress-plugin --install /path/to/wordpress`)"
    if installed == shipped:
        report.check(True, f"companion plugin {installed}")
    elif _version(installed) < SAFE_SINCE:
        report.check(
            False,
            f"companion plugin {installed} is outdated and unsafe: any logged-in user of the site "
            f"could grant themselves capabilities through it; {install} now",
        )
    elif _version(installed) < JUDGES_POWER_SINCE:
        report.check(
            False,
            f"companion plugin {installed} is outdated: it cannot say whether a user holds power on "
            "another site of a network or through another plugin, so every delivery for an existing "
            f"user fails (nothing is changed) until you {install}, then replay them",
        )
    elif _version(installed) < _version(shipped):
        report.check(False, f"companion plugin {installed} is outdated: {install}")
    else:
        report.check(False, f"companion plugin {installed} is newer than this bridge's {shipped}: upgrade the bridge")
    return installed == shipped


def _check_capabilities(report: Report, user: str, granted: set[str] | frozenset[str]) -> None:
    missing = [cap for cap in NEEDED_CAPABILITIES if cap not in granted]
    report.check(
        not missing,
        f"user {user} can {', '.join(NEEDED_CAPABILITIES)}"
        if not missing
        else f"user {user} lacks {', '.join(missing)} (the bridge needs {', '.join(NEEDED_CAPABILITIES)})",
    )


def _check_roles(report: Report, settings: Settings, roles: SiteRoles) -> None:
    """Every role a webhook may grant (linked roles among them) must exist and carry no power."""
    refused = []
    for role in sorted(settings.allowed_roles):
        why = roles.refusal(role)
        if why:
            setting = "WPF_DEFAULT_ROLE" if role == settings.default_role else "WPF_ALLOWED_ROLES"
            tags = sorted(tag for tag, linked in settings.field_map.tag_roles.items() if linked == role)
            linked = f", linked to tag {', '.join(map(repr, tags))}" if tags else ""
            refused.append(f"{role} ({setting}{linked}): {why}")
    allowed = ", ".join(sorted(settings.allowed_roles))
    report.check(
        not refused,
        f"roles a webhook may grant exist and carry no privileged capability: {allowed}"
        if not refused
        else "roles a webhook may not grant: " + "; ".join(refused) + "; change the settings",
    )


def _check_ortto(report: Report, settings: Settings) -> None:
    """The key, then every Ortto field the bridge reads or writes, against the account's own list."""
    if "ORTTO_API_KEY" in settings.placeholders():
        report.note("Ortto not checked until ORTTO_API_KEY is set")
        return
    ortto = OrttoClient(settings.ortto_api_url, settings.ortto_api_key)
    try:
        custom = ortto.custom_fields()
    except BridgeError as exc:
        report.check(False, f"Ortto at {settings.ortto_api_url}: {exc}")
        return
    report.check(True, f"Ortto API key accepted by {settings.ortto_api_url}")
    password_field = settings.ortto_password_field
    if not password_field:
        report.note("Return Password is off (ORTTO_PASSWORD_FIELD is not set): new users get no password in Ortto")
    elif password_field not in custom:
        report.check(
            False,
            f"ORTTO_PASSWORD_FIELD {password_field} is not a custom field in this Ortto account "
            "(Settings > Fields: create a text field, and copy its id)",
        )
    elif custom[password_field] not in TEXT_TYPES:
        report.check(
            False,
            f"ORTTO_PASSWORD_FIELD {password_field} is a {custom[password_field]} field; passwords need a text field",
        )
    else:
        report.check(True, f"Return Password: generated passwords go to Ortto text field {password_field}")
    mapped = sorted(set(settings.field_map.ortto_fields()) - BUILT_IN_FIELDS)
    missing = [field for field in mapped if ":cm:" in field and field not in custom]
    report.check(
        not missing,
        f"every mapped Ortto field exists ({len(mapped)} custom)"
        if not missing
        else f"mapped Ortto fields missing from the account: {', '.join(missing)} (fix the field map, WPF_FIELD_MAP, default {DEFAULT_FIELD_MAP})",
    )
    for field in mapped:
        if ":cm:" not in field:
            report.note(f"{field} is not a built-in field the bridge knows: check its id in Ortto")


def _notes(report: Report, settings: Settings) -> None:
    """What is not wrong but easy to get wrong: the proxy setting, where the login email comes from."""
    if settings.trusted_proxies:
        report.note(
            f"WPF_TRUSTED_PROXIES={settings.trusted_proxies}: the client address is read from X-Forwarded-For, "
            f"{settings.trusted_proxies} hop(s) back; without that many proxies in front, clients could fake it"
        )
    else:
        report.note(
            f"WPF_TRUSTED_PROXIES=0: wrong keys are counted per client address ({settings.key_failure_limit} a "
            "minute). Behind a reverse proxy (nginx, Heroku's router) every client shares the proxy's address, "
            "so a few wrong keys from anyone would lock Ortto out: set it to the number of proxies in front"
        )
    email_field = settings.field_map.fields.get("user_email")
    if email_field and email_field != "str::email":
        report.note(
            f"user_email comes from {email_field}: whoever fills in an Ortto form with someone's email can set "
            "that field, and with it the login email of a user linked to that contact; map it from str::email"
        )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in text.split("."))


def webhook_urls(settings: Settings, base: str, access_key: str | None = None) -> list[tuple[str, str]]:
    """(action, URL) to paste into Ortto for each action (add with the alphabetically first role a
    webhook may grant beyond the default, as a journey's would); without ``access_key`` the operator adds it (the
    console never shows it), or sends it as the ``X-WPF-Access-Key`` header."""
    base = base.rstrip("/")
    key = {"access_key": access_key} if access_key else {}
    granted = sorted(settings.allowed_roles - {settings.default_role})  # the role a journey would grant
    return [
        (action, f"{base}/?{urlencode({'wpf_action': action, **key, **extra})}")
        for action, extra in (
            ("add", {"role": granted[0] if granted else settings.default_role, "send_notification": "true"}),
            ("update", {}),
            ("update_tags", {}),
        )
    ]
