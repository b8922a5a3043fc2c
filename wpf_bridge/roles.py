"""What counts as power on a WordPress site, and the site's roles as the companion plugin reports them.

A webhook may grant only a harmless role and may never change a user who holds power: anyone can
fill an Ortto form, so a role or user that can run the site is out of a webhook's reach.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

#: Capabilities that let a user run the site, see or manage its users, or run code in it.
PRIVILEGED_CAPABILITIES = frozenset({
    "manage_options", "edit_users", "promote_users", "create_users", "delete_users", "remove_users", "list_users",
    "activate_plugins", "edit_plugins", "install_plugins", "upload_plugins", "update_plugins", "delete_plugins",
    "switch_themes", "edit_themes", "install_themes", "upload_themes", "update_themes", "delete_themes",
    "edit_files", "unfiltered_html", "unfiltered_upload", "update_core", "import", "export",
    "manage_network", "manage_sites", "create_sites", "delete_sites", "manage_network_users",
    "manage_network_plugins", "manage_network_themes", "manage_network_options", "upgrade_network", "setup_network",
})
NEVER_GRANTED = "administrator"
ROLES_TTL = 60.0  # seconds the site's roles are trusted before they are read again


def powers(capabilities: frozenset[str] | set[str]) -> list[str]:
    """The privileged capabilities among ``capabilities``, sorted (empty: harmless)."""
    return sorted(PRIVILEGED_CAPABILITIES & set(capabilities))


@dataclass(frozen=True)
class SiteRoles:
    """Each role on the site with the capabilities it grants."""

    capabilities: dict[str, frozenset[str]]

    @classmethod
    def from_status(cls, status: dict) -> SiteRoles:
        roles = status.get("roles") or {}
        return cls({name: frozenset(caps or ()) for name, caps in roles.items()})

    def refusal(self, role: str) -> str | None:
        """Why ``role`` may not be granted by a webhook (unknown, administrator, or powerful); else ``None``."""
        if role == NEVER_GRANTED:
            return "administrator is never granted"
        if role not in self.capabilities:
            return "it does not exist on the site"
        found = powers(self.capabilities[role])
        return f"it carries privileged capabilities ({', '.join(found)})" if found else None


class RoleCache:
    """The site's roles, read through ``fetch`` at most once per ``ROLES_TTL`` (shared by a worker's threads)."""

    def __init__(self, fetch: Callable[[], dict], ttl: float = ROLES_TTL):
        self._fetch = fetch
        self._ttl = ttl
        self._lock = threading.Lock()
        self._roles: SiteRoles | None = None
        self._read_at = 0.0

    def get(self) -> SiteRoles:
        with self._lock:
            if self._roles is None or time.monotonic() - self._read_at > self._ttl:
                self._roles = SiteRoles.from_status(self._fetch())
                self._read_at = time.monotonic()
            return self._roles
