"""``wpf-bridge preview EMAIL|CONTACT_ID``: what an action would do to a person, changing nothing.

It loads the person from Ortto, looks the user up in WordPress and asks the same rules the worker
asks (``rules.decide_*``): who would be created or updated and how (each field, old -> new), the
role, the tags, whether a password would be generated and sent to Ortto, or why it would refuse.
Only reads are sent: Ortto's person, WordPress's look-up, the site's roles and the user's fields.
"""

from __future__ import annotations

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
        current = wordpress.user_fields(decision.write.user_id) if decision.write.user_id else {}
        lines += [f"would update user {decision.write.user_id}:", *_changes(decision.write.values, current)]
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
    return f"Ortto person {contact.id} ({contact.email or 'no email'}, tags {contact.tags or 'none'}): {held}"


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
    left out), ``key: new`` when creating; meta keys one by one (their current values are not read)."""
    lines, same = [], []
    for key, value in values.items():
        if key in _HIDDEN:
            lines.append(f"  {key}: (not shown)")
        elif key == "wpf_meta":
            lines += [f"  meta {k}: {_text(v)}" for k, v in value.items() if not k.startswith("wpf_bridge_")]
        elif key in _SHOWN and current:
            old = current.get(_SHOWN[key])
            if _text(old) == _text(value):
                same.append(key)
            else:
                lines.append(f"  {key}: {_text(old)} -> {_text(value)}")
        else:
            lines.append(f"  {key}: {_text(value)}")
    return lines + ([f"  unchanged: {', '.join(same)}"] if same else [])


def _text(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return repr(value) if isinstance(value, str) else str(value)
