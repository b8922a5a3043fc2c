"""Generated passwords for new users (usernames are a rule: ``rules.usernames``)."""

from __future__ import annotations

import secrets
import string

# No backslash (WordPress REST refuses it) and no quotes (they break email templates).
_ALPHABET = string.ascii_letters + string.digits + "!#$%*+-=?@^_~"
PASSWORD_LENGTH = 20


def generate_password() -> str:
    """A strong random password with at least one letter, digit and symbol of each kind."""
    while True:
        password = "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH))
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
            and any(not c.isalnum() for c in password)
        ):
            return password
