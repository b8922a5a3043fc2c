"""``wpf-bridge preview EMAIL|CONTACT_ID``: what an action would do to a person, changing nothing.

It loads the person from Ortto, looks the user up in WordPress and asks the same rules the worker
asks (``rules.decide_*``): who would be created or updated and how (each field, old -> new), the
role, the tags, whether a password would be generated and sent to Ortto, or why it would refuse.
Only reads are sent: Ortto's person, WordPress's look-up, the site's roles and the user's fields.
"""

from __future__ import annotations

import re
from html.entities import name2codepoint
from typing import Any

from .accounts import Contact, Lookup
from .clients.ortto import OrttoClient
from .clients.wordpress import WordPressClient
from .roles import SiteRoles
from .rules import Create, Finish, Outcome, Policy, Update, decide_add, decide_update, decide_update_tags
from .settings import Settings
from .types import Delivery

#: REST keys of a user write, and how core's users route shows the current value (context=edit).
_SHOWN = {
    "first_name": "first_name",
    "last_name": "last_name",
    "nickname": "nickname",
    "name": "name",
    "email": "email",
    "url": "url",
    "description": "description",
    "locale": "locale",
    "roles": "roles",
}
_HIDDEN = {"password"}  # never printed, whatever its origin


def preview(settings: Settings, who: str, action: str, role: str | None, notify: bool) -> list[str]:
    """The lines that say what ``action`` would do for ``who`` (an email or an Ortto contact id)."""
    ortto = OrttoClient(settings.ortto_api_url, settings.ortto_api_key)
    wordpress = WordPressClient(settings.wordpress_url, settings.wordpress_user, settings.wordpress_app_password)
    fields = settings.field_map.ortto_fields()
    contact = ortto.find_by_email(who, fields) if "@" in who else ortto.get_contacts([who], fields).get(who)
    if contact is None:
        return [f"Ortto has no person {who}: {action} would fail (Ortto has no contact with it), changing nothing"]
    found = wordpress.lookup(contact.id, contact.email)
    site = SiteRoles.from_status(wordpress.status())
    policy = Policy.of(settings)
    delivery = Delivery("preview", action, contact.id, contact.email, role, notify)
    if action == "add":
        decision = decide_add(delivery, contact, found, site, policy)
    elif action == "update":
        decision = decide_update(delivery, contact, found, site, policy)
    else:
        decision = decide_update_tags(contact, found, site, policy)
    lines = [_person(contact, found)]
    if isinstance(decision, Create):
        lines += _creation(decision, settings.ortto_password_field)
    elif isinstance(decision, Update):
        user, user_id = found.by_contact_id or found.by_email, decision.write.user_id
        current = wordpress.user_fields(user_id) if user_id else {}
        if current and user and user.contact_id:
            current["meta"] = {"ortto_contact_id": user.contact_id}
        lines += [f"would update user {user_id}:", *_changes(decision.write.values, current)]
        if action == "add" and notify:
            lines.append("  welcome email: not sent (the user exists already)")
        lines.append(f"and end {decision.outcome.status}: {decision.outcome.message}")
    elif isinstance(decision, Outcome):
        lines.append(f"would change nothing and end {decision.status}: {decision.message}")
    elif isinstance(decision, Finish):  # a preview is no delivery: it never created anyone
        lines.append(f"user {decision.user.id} was created for this person by an earlier delivery")
    return [*lines, "(a preview: nothing was changed in WordPress or Ortto)"]


def _person(contact: Contact, found: Lookup) -> str:
    user = found.by_contact_id or found.by_email
    held = (
        f"WordPress user {user.id} ({user.username}, roles {', '.join(user.roles) or 'none'})"
        if user
        else "no WordPress user"
    )
    return f"Ortto person {contact.id} ({contact.email or 'no email'}, tags {_text(contact.tags or None)}): {held}"


def _creation(create: Create, password_field: str | None) -> list[str]:
    values = create.values
    password = (
        "mapped from Ortto (not shown, never sent back)"
        if create.password
        else f"generated, and sent to Ortto's {password_field}"
        if password_field
        else "generated, and sent nowhere (ORTTO_PASSWORD_FIELD is not set)"
    )
    lines = [
        f"would create a user: username {create.usernames[0]!r}"
        + (f" (or {', '.join(map(repr, create.usernames[1:3]))}… if taken)" if len(create.usernames) > 1 else ""),
        *_changes({k: v for k, v in values.items() if k != "wpf_send_notification"}, {}),
        f"  password: {password}",
        f"  welcome email: {'sent' if values.get('wpf_send_notification') else 'not sent'}",
    ]
    return lines + ([f"  note: {create.note.lstrip('; ')}"] if create.note else [])


def _changes(values: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One line a value: ``key: old -> new`` for a user that exists (a value it already holds is
    left out), ``key: new`` when creating, each as WordPress will keep it. Meta key by key: the
    current values of meta other than the contact id are not read, so those are said to be set."""
    lines, same = [], []
    for key, value in values.items():
        if key in _HIDDEN:
            lines.append(f"  {key}: (not shown)")
        elif key == "wpf_meta":
            known = current.get("meta", {})
            for name, meta in value.items():
                if name.startswith("wpf_bridge_"):
                    continue
                if name in known and _text(known[name]) == _text(meta):
                    same.append(f"meta {name}")
                elif current:
                    lines.append(f"  meta {name}: set to {_text(meta)} (its current value is not read)")
                else:
                    lines.append(f"  meta {name}: {_text(meta)}")
        elif key in _SHOWN and current:
            old, kept = current.get(_SHOWN[key]), as_kept(key, value)
            if _text(old) == _text(kept):
                same.append(key)
            else:
                lines.append(f"  {key}: {_text(old)} -> {_shown(value, kept)}")
        else:
            lines.append(f"  {key}: {_shown(value, as_kept(key, value))}")
    return lines + ([f"  unchanged: {', '.join(same)}"] if same else [])


#: Fields core's users route passes through sanitize_text_field, which WordPress applies to each write.
_TEXT_FIELDS = {"first_name", "last_name", "nickname", "name"}


def as_kept(key: str, value: Any) -> Any:
    """What WordPress keeps of a name (Python's reading of sanitize_text_field: script and style
    elements and tags removed, percent-encoded octets removed, whitespace collapsed, trimmed; then
    &, < and > as HTML entities), so that a preview shows no change a write would not make."""
    if key not in _TEXT_FIELDS or not isinstance(value, str):
        return value
    text = value
    if "<" in text:
        text = re.sub(r"<[^>]*?((?=<)|>|$)", lambda m: m[0] if ">" in m[0] else _escaped(m[0]), text)  # a lone <
        text = re.sub(r"<(script|style)[^>]*?>.*?</\1>", "", text, flags=re.IGNORECASE | re.DOTALL)
        text = re.sub(r"<[^>]*>", "", text)
    text = re.sub(r"[\r\n\t ]+", " ", text).strip()
    found = False
    while octet := re.search(r"%[a-fA-F0-9]{2}", text):
        text, found = text.replace(octet[0], ""), True
    text = re.sub(r" +", " ", text).strip() if found else text
    return _entities(text).replace("<", "&lt;").replace(">", "&gt;")


def _entities(text: str) -> str:
    """The pre_user_* filters' kses and _wp_specialchars: every & stands as &amp; but for an HTML
    4.01 named entity (kses's 2-8 letters and 0-2 digits), or a valid numeric one (decimal written
    with at least 3 digits, hexadecimal without leading zeros)."""

    def named(match: re.Match[str]) -> str:
        return f"&{match[1]};" if match[1] in name2codepoint else match[0]

    def decimal(match: re.Match[str]) -> str:
        return f"&#{match[1].lstrip('0').rjust(3, '0')};" if _valid(int(match[1])) else match[0]

    def hexadecimal(match: re.Match[str]) -> str:
        return f"&#x{match[1].lstrip('0')};" if _valid(int(match[1], 16)) else match[0]

    text = text.replace("&", "&amp;")
    text = re.sub(r"&amp;([A-Za-z]{2,8}[0-9]{0,2});", named, text)
    text = re.sub(r"&amp;#0*([0-9]{1,7});", decimal, text)
    return re.sub(r"&amp;#[xX]0*((?:0?[0-9a-fA-F]){1,6});", hexadecimal, text)


def _valid(code: int) -> bool:
    """kses's valid_unicode."""
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def _escaped(text: str) -> str:
    """esc_html's entities."""
    for plain, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#039;")):
        text = text.replace(plain, entity)
    return text


def _shown(value: Any, kept: Any) -> str:
    return _text(kept) if kept == value else f"{_text(kept)} (Ortto's {_text(value)}, as WordPress keeps it)"


def _text(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return repr(value) if isinstance(value, str) else str(value)
