"""People and text as they are: names in any script, emoji, right-to-left text, very long names,
and emails that differ only in case between Ortto and WordPress, through the real WordPress."""
from __future__ import annotations

import secrets

import pytest
from conftest import PASSWORD_FIELD
from inprocess import can_log_in, person

from wpf_bridge.types import DONE

NAMES = [
    ("Zoë", "Ørsted-Łukasiewicz"),
    ("山田", "太郎"),
    ("محمد", "العلي"),  # right to left
    ("שָׁלוֹם", "כֹּהֵן"),  # right to left, with points
    ("Dav👩‍💻d", "O'Brien 🎉"),  # emoji outside the BMP, a zero-width joiner, a quote
    ("José María", "de la Peña y Ñúñez"),
    ("Ἀλέξανδρος", "Παπαδόπουλος"),
    ("A" * 180 + "é", "B" * 180 + "ü"),  # very long, ending in a two-byte character
]


def names_of(wordpress, user_id: int) -> tuple[str, str]:
    return wordpress.user_meta(user_id, "first_name"), wordpress.user_meta(user_id, "last_name")


@pytest.mark.parametrize("first, last", NAMES, ids=[f"{first[:12]} {last[:12]}" for first, last in NAMES])
def test_names_round_trip_unchanged_on_create_and_update(bridge, ortto, wordpress, first, last):
    contact_id, email = person(ortto, **{"str::first": first, "str::last": last})
    done = bridge.deliver("add", contact_id=contact_id)
    assert done.status == DONE, done.result
    assert names_of(wordpress, done.user_id) == (first, last)
    assert can_log_in(wordpress, email, ortto.people[contact_id][PASSWORD_FIELD])

    ortto.people[contact_id].update({"str::first": last, "str::last": first})  # changed in Ortto: swapped
    assert bridge.deliver("update", contact_id=contact_id).status == DONE
    assert names_of(wordpress, done.user_id) == (last, first)


def test_an_email_differing_only_in_case_finds_the_existing_user(bridge, ortto, wordpress):
    local = f"Mixed.Case-{secrets.token_hex(4)}"
    stored = f"{local.lower()}@example.test"
    login = f"existing-{secrets.token_hex(4)}"
    code = (f"echo wp_insert_user(array('user_login' => '{login}', 'user_email' => '{stored}', "
            f"'user_pass' => '{secrets.token_hex(8)}', 'role' => 'subscriber'));")
    user_id = int(wordpress.php_eval(code).strip())
    contact_id, _ = person(ortto, email=f"{local}@EXAMPLE.TEST", **{"str::first": "Cased"})

    done = bridge.deliver("add", contact_id=contact_id)
    assert done.status == DONE, done.result
    assert done.user_id == user_id and len(wordpress.users_with_email(stored)) == 1, "found, not created again"
    assert wordpress.user_meta(user_id, "ortto_contact_id") == contact_id
    assert wordpress.user_meta(user_id, "first_name") == "Cased"
    assert wordpress.emails_to(stored) == [], "an existing user gets no welcome email"


def test_a_non_ascii_email_is_refused_by_wordpress_with_its_reason(bridge, ortto, wordpress):
    """WordPress's is_email() takes ASCII addresses only: the delivery fails at once, saying so."""
    contact_id, _ = person(ortto, email=f"zoë-{secrets.token_hex(3)}@example.test")
    done = bridge.deliver("add", contact_id=contact_id)
    assert done.status == "failed" and "email" in done.result.lower(), done.result
