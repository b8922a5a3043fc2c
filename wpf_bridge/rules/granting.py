"""Which role a webhook may grant: an allowed one that carries no power on the site, never administrator."""

from __future__ import annotations

from ..roles import SiteRoles
from ..types import FAILED
from .decisions import Outcome
from .policy import Policy


def role_refusal(role: str, site: SiteRoles, policy: Policy) -> str | None:
    """Why a webhook may not grant ``role``: not in ``WPF_ALLOWED_ROLES``, or refused by the site's roles."""
    if role not in policy.grantable:
        return "is not allowed (WPF_ALLOWED_ROLES)"
    why = site.refusal(role)
    return f"is refused: {why}" if why else None


def default_role_refusal(site: SiteRoles, policy: Policy) -> Outcome | None:
    """A default role that carries power creates nobody until the settings are fixed."""
    why = site.refusal(policy.default_role)
    return Outcome(FAILED, f"WPF_DEFAULT_ROLE {policy.default_role!r} cannot be granted: {why}") if why else None


def new_user_role(requested: str | None, site: SiteRoles, policy: Policy) -> tuple[str, str]:
    """The role for a new user (the default role is grantable), and a note on why it is not the one requested."""
    default = policy.default_role
    if not requested or requested == default:
        return default, ""
    why = role_refusal(requested, site, policy)
    return (default, f"; role {requested!r} {why}, gave {default!r}") if why else (requested, "")
