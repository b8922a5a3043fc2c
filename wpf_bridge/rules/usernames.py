"""Which username a new user gets: a mapped one, else WP Fusion's format, digits appended until free."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

MAX_USERNAME = 60  # wp_users.user_login
MAX_TRIES = 100


def sanitize_username(value: str) -> str:
    """What WordPress's strict ``sanitize_user`` keeps: ASCII letters, digits, space, ``_.-@``."""
    ascii_value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9_.\-@]", "", ascii_value.lower())


def username_candidates(fmt: str, email: str, first: str = "", last: str = "", wanted: str = "") -> Iterator[str]:
    """Usernames to try in order; WordPress says which are taken (``existing_user_login``).

    ``wanted`` is a username mapped from an Ortto field; otherwise ``fmt`` is WP Fusion's
    username format: ``email``, ``flname`` (firstnamelastname) or ``fnamenum`` (firstname + digits).
    """
    base = sanitize_username(wanted)
    numbered_only = False
    if not base and fmt == "flname":
        base = sanitize_username(first + last)
    elif not base and fmt == "fnamenum":
        base = sanitize_username(first)
        numbered_only = bool(base)
    base = base or sanitize_username(email) or "user"
    if not numbered_only:
        yield base[:MAX_USERNAME]
    for n in range(1, MAX_TRIES):
        suffix = str(n)
        yield base[: MAX_USERNAME - len(suffix)] + suffix
