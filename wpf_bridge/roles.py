"""What counts as power on a WordPress site, and the site's roles as the companion plugin reports them.

A webhook may grant only a harmless role and may never change a user who holds power: anyone can
fill an Ortto form, so a role or user that can run the site is out of a webhook's reach. A user
is the bridge's to change only if every role they have, on every site of a network, is one a
webhook may grant, and WordPress itself says they hold none of ``POWERS`` on any of those sites.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .accounts import POWERS, User
from .settings import NEVER_GRANTED

ROLES_TTL = 60.0  # seconds the site's roles are trusted before they are read again


def powers(capabilities: frozenset[str] | set[str]) -> list[str]:
    """The privileged capabilities among ``capabilities``, sorted (empty: harmless)."""
    return sorted(POWERS & set(capabilities))


PLUGIN_TOO_OLD = (
    "the companion plugin on WordPress is older than 1.4.0, so it cannot say what power the user holds on "
    "other sites of a network or through other plugins; update it (`wpf-bridge wordpress-plugin --install "
    "/path/to/wordpress`) and replay"
)


def held_power(user: User, grantable: frozenset[str]) -> str | None:
    """Why a webhook may never change ``user``, else ``None``: a super admin, a role on any site
    that is not ``grantable`` (``WPF_ALLOWED_ROLES`` and the default role), or a privileged
    capability on any site however it was given; or a site the user belongs to that runs code the
    look-up could not ask (its own plugins or theme); or no report of the other sites to judge by."""
    if user.super_admin:
        return "a super admin of the network"
    if user.sites is None:
        return PLUGIN_TOO_OLD
    for site in user.sites:
        where = f" on site {site.site}" if len(user.sites) > 1 else ""
        others = sorted(set(site.roles) - grantable)
        if others:
            return f"role {', '.join(others)}{where}, which a webhook may not grant"
        if site.powers:
            return f"can {', '.join(site.powers)}{where}"
        if site.unseen:
            return (
                f"belongs to site {site.site}, whose own plugins or theme ({', '.join(site.unseen[:3])}) are not "
                "loaded on the bridge's site and could grant power there"
            )
    return None


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
