"""The operator console through Flask's test client (the ``client`` fixture): its password and its forms."""
from __future__ import annotations

import re
import secrets

CONSOLE_PASSWORD = "console-" + secrets.token_hex(8)


def token(client, path: str = "/console/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def sign_in(client, password: str = CONSOLE_PASSWORD, name: str = "Bob"):
    return client.post("/console/login", data={"password": password, "name": name, "csrf_token": token(client)})
