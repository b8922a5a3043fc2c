"""Linked roles (``[tag_roles]`` in the field map, as WP Fusion links a tag to a role): while one
of a role's tags is on the Ortto contact the user holds the role, and when none is they lose it;
roles no tag is linked to are kept, and so is the role the webhook itself asks for; a user left
with no role gets the default role."""

from __future__ import annotations

from collections.abc import Sequence

from ..roles import SiteRoles
from .granting import role_refusal
from .policy import Policy


def linked_roles(
    roles: Sequence[str], tags: Sequence[str], site: SiteRoles, policy: Policy, asked: str | None = None
) -> tuple[list[str], str]:
    """``roles`` after the contact's ``tags``, and a note on what was refused ('' when nothing).
    ``asked``, the role the webhook asks for, stays. A linked role the site would refuse (it
    carries power now) is neither granted nor taken away."""
    links = policy.field_map.tag_roles
    if not links:
        return list(roles), ""
    held = set(tags)
    wanted = {role for tag, role in links.items() if tag in held}
    refused = {role: why for role in set(links.values()) if (why := role_refusal(role, site, policy))}
    after = [role for role in roles if role in refused or role not in links.values() or role in wanted or role == asked]
    after += sorted(role for role in wanted - set(roles) if role not in refused)
    if not after:
        after = [policy.default_role]
    notes = [f"linked role {role!r} {refused[role]}; not granted" for role in sorted(wanted & refused.keys())]
    return after, "; ".join(notes)
