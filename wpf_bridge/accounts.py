"""Who a person is on each side, as plain data every layer may read: an Ortto contact, a
WordPress user and where they stand on each site, a look-up's answer, and the capabilities that
count as power. The clients build these from what Ortto and WordPress answer; the rules decide
from them without importing a client (or an HTTP library)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Capabilities that let a user run the site, see or manage its users, or run code in it. The
#: companion plugin (1.4.0+) reports which of them each user it finds holds, on every site of a
#: network, as WordPress's own ``user_can()`` answers (so plugins' run-time grants count).
POWERS = frozenset(
    {
        "manage_options",
        "edit_users",
        "promote_users",
        "create_users",
        "delete_users",
        "remove_users",
        "list_users",
        "activate_plugins",
        "edit_plugins",
        "install_plugins",
        "upload_plugins",
        "update_plugins",
        "delete_plugins",
        "switch_themes",
        "edit_themes",
        "install_themes",
        "upload_themes",
        "update_themes",
        "delete_themes",
        "edit_files",
        "unfiltered_html",
        "unfiltered_upload",
        "update_core",
        "import",
        "export",
        "manage_network",
        "manage_sites",
        "create_sites",
        "delete_sites",
        "manage_network_users",
        "manage_network_plugins",
        "manage_network_themes",
        "manage_network_options",
        "upgrade_network",
        "setup_network",
    }
)


@dataclass(frozen=True)
class Contact:
    id: str
    fields: dict[str, Any]

    @property
    def email(self) -> str | None:
        return self.fields.get("str::email") or None

    @property
    def tags(self) -> list[str]:
        return [str(tag) for tag in self.fields.get("tags") or []]


@dataclass(frozen=True)
class Standing:
    """A user on one site of the network: their roles there, the ``POWERS`` they hold there, and
    the plugins and theme of that site whose run-time grants the look-up could not ask (they are
    not loaded on the bridge's site)."""

    site: int
    roles: tuple[str, ...]
    powers: tuple[str, ...]
    unseen: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: dict) -> Standing:
        return cls(int(data["site"]), *(tuple(data.get(key) or ()) for key in ("roles", "powers", "unseen")))


@dataclass(frozen=True)
class User:
    id: int
    username: str
    email: str
    roles: tuple[str, ...]
    capabilities: frozenset[str]
    super_admin: bool = False  # multisite: holds every capability without listing them
    sites: tuple[Standing, ...] | None = None  # every site the user stands on; None: the plugin is older than 1.4.0
    contact_id: str = ""
    created_for: str = ""  # the Ortto contact id the bridge created this user for, if it did
    delivery_id: str = ""  # the bridge delivery that created this user, if any
    notified: bool = False  # the companion plugin sent (or is sending) the new-user email
    email_unconfirmed: bool = False  # the user set this email on themselves, without a confirmation link

    @classmethod
    def from_json(cls, data: dict) -> User:
        caps = data.get("capabilities") or []
        if isinstance(caps, dict):  # core REST: {"cap": true, ...}
            caps = [cap for cap, granted in caps.items() if granted]
        return cls(
            id=int(data["id"]),
            username=str(data.get("username", "")),
            email=str(data.get("email", "")),
            roles=tuple(data.get("roles") or ()),
            capabilities=frozenset(caps),
            super_admin=bool(data.get("super_admin")),
            sites=tuple(Standing.from_json(site) for site in data["sites"])
            if isinstance(data.get("sites"), list)
            else None,
            contact_id=str(data.get("contact_id") or ""),
            created_for=str(data.get("created_for") or ""),
            delivery_id=str(data.get("delivery_id") or ""),
            notified=bool(data.get("notified")),
            email_unconfirmed=bool(data.get("email_unconfirmed")),
        )


@dataclass(frozen=True)
class Lookup:
    by_contact_id: User | None
    by_email: User | None

    @classmethod
    def from_json(cls, body: dict) -> Lookup:
        return cls(*(User.from_json(body[k]) if body.get(k) else None for k in ("by_contact_id", "by_email")))

    @property
    def found(self) -> bool:
        return self.by_contact_id is not None or self.by_email is not None


@dataclass(frozen=True)
class Profile:
    """A WordPress user as the companion plugin's outbox gives them for a push: the email, roles,
    and the watched ``users`` columns and meta keys (with the bridge's own marks: ``ortto_contact_id``,
    ``wpf_bridge_created_for``, ``wpf_bridge_unconfirmed_email``). Never a password."""

    id: int
    email: str
    roles: tuple[str, ...]
    fields: dict[str, str]
    meta: dict[str, str]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        def texts(value: Any) -> dict[str, str]:
            return {str(k): "" if v is None else str(v) for k, v in value.items()} if isinstance(value, dict) else {}

        return cls(
            id=int(data["id"]),
            email=str(data.get("email") or ""),
            roles=tuple(str(role) for role in data.get("roles") or ()),
            fields=texts(data.get("fields")),
            meta=texts(data.get("meta")),
        )

    @property
    def link(self) -> str:
        """The Ortto person this user is linked to ('' when none)."""
        return self.meta.get("ortto_contact_id", "")

    @property
    def email_unconfirmed(self) -> bool:
        """The user set this email themselves and never proved they own it."""
        mark = self.meta.get("wpf_bridge_unconfirmed_email", "")
        return bool(mark) and mark.lower() == self.email.lower()


@dataclass(frozen=True)
class Change:
    """One row of the companion plugin's outbox: user ``user_id`` changed in a way of ``kind``
    (``new``, ``profile``, ``roles``) at ``changed_at``; ``profile`` is the user when the bridge
    pulled it (``None``: deleted since)."""

    id: int
    kind: str
    user_id: int
    changed_at: str
    profile: Profile | None
