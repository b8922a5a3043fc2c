"""Generated passwords and the username formats."""
from __future__ import annotations

import itertools

import pytest

from wpf_bridge.actions.passwords import generate_password
from wpf_bridge.rules.usernames import username_candidates


def test_generated_passwords_are_strong_and_distinct():
    passwords = {generate_password() for _ in range(200)}
    assert len(passwords) == 200
    for password in passwords:
        assert len(password) >= 16 and "\\" not in password and '"' not in password and "'" not in password
        assert any(c.isupper() for c in password) and any(c.islower() for c in password)
        assert any(c.isdigit() for c in password) and any(not c.isalnum() for c in password)


@pytest.mark.parametrize(
    "args, first_three",
    [
        (("email", "Jane+news@Example.com"), ["janenews@example.com", "janenews@example.com1", "janenews@example.com2"]),
        (("flname", "j@x.test", "Zoë", "O'Brien"), ["zoeobrien", "zoeobrien1", "zoeobrien2"]),
        (("fnamenum", "j@x.test", "Jane"), ["jane1", "jane2", "jane3"]),
        (("fnamenum", "j@x.test", ""), ["j@x.test", "j@x.test1", "j@x.test2"]),
        (("flname", "j@x.test", "", ""), ["j@x.test", "j@x.test1", "j@x.test2"]),
        (("email", "a@b.test", "", "", "Custom User"), ["customuser", "customuser1", "customuser2"]),
    ],
)
def test_username_candidates(args, first_three):
    assert list(itertools.islice(username_candidates(*args), 3)) == first_three


def test_usernames_fit_wordpress_limit():
    email = "x" * 70 + "@example.test"
    for name in itertools.islice(username_candidates("email", email), 20):
        assert len(name) <= 60


def test_secret_keys_rotate_without_losing_waiting_passwords():
    from wpf_bridge.errors import PermanentError
    from wpf_bridge.worker.vault import Vault

    old = Vault(["the-old-secret-key-0001"]).seal("waiting password")
    rotated = Vault(["the-new-secret-key-0002", "the-old-secret-key-0001"])
    assert rotated.open(old) == "waiting password"
    fresh = rotated.seal("new password")
    assert Vault(["the-new-secret-key-0002"]).open(fresh) == "new password", "the first key seals"
    with pytest.raises(PermanentError):
        Vault(["the-old-secret-key-0001"]).open(fresh)
