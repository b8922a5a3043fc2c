"""Encrypts a generated password while it waits to reach Ortto, so the store never holds it in clear.

Several keys allow rotation (``MultiFernet``): the first seals, every one opens, so passwords
sealed under the old key still reach Ortto after a new key is put in front.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..errors import PermanentError


class Vault:
    def __init__(self, secret_keys: Sequence[str]):
        self._fernet = MultiFernet([Fernet(_fernet_key(key)) for key in secret_keys])

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise PermanentError(
                "a stored password cannot be decrypted: none of the keys in WPF_SECRET_KEY sealed it"
            ) from None


def _fernet_key(secret_key: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode("utf-8")).digest())
