"""The settings the rules read, apart from the rest, so that a rule can be asked with any of them."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..fieldmap import FieldMap
from ..settings import Settings


@dataclass(frozen=True)
class Policy:
    """``allowed_roles``: ``WPF_ALLOWED_ROLES``; ``returns_password``: a generated password goes
    to Ortto (``ORTTO_PASSWORD_FIELD`` is set); ``push_*`` and ``new_user_tags``: what
    WordPress's changes take to Ortto."""

    allowed_roles: frozenset[str]
    default_role: str = "subscriber"
    field_map: FieldMap = field(default_factory=FieldMap)
    username_format: str = "email"
    welcome_email: bool = False
    returns_password: bool = True
    push_new_users: bool = False
    push_profile_changes: bool = False
    new_user_tags: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            allowed_roles=settings.allowed_roles,
            default_role=settings.default_role,
            field_map=settings.field_map,
            username_format=settings.username_format,
            welcome_email=settings.send_welcome_email,
            returns_password=bool(settings.ortto_password_field),
            push_new_users=settings.push_new_users,
            push_profile_changes=settings.push_profile_changes,
            new_user_tags=settings.new_user_tags,
        )

    @property
    def grantable(self) -> frozenset[str]:
        """The roles a webhook may grant: the allowed ones and the default role."""
        return self.allowed_roles | {self.default_role}
