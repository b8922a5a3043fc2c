"""The field map: file validation, and Ortto's typed values as WordPress text."""
from __future__ import annotations

from pathlib import Path

import pytest

from wpf_bridge.fieldmap import FieldMap, FieldMapError, load_field_map, to_text

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_example_loads():
    field_map = load_field_map(ROOT / "config" / "fields.toml")
    assert field_map.fields == {"first_name": "str::first", "last_name": "str::last"}


@pytest.mark.parametrize(
    "text, message",
    [
        ('[fields]\nbilling_city = "geo::city"\n', "not a WordPress user field"),
        ('[meta]\nwp_capabilities = "str::first"\n', "may not be written"),
        ('[meta]\nwp_user_level = "str::first"\n', "may not be written"),
        ('[meta]\nortto_tags = "str::first"\n', "may not be written"),
        ('[meta]\nwpf_bridge_delivery = "str::first"\n', "may not be written"),
        ('[meta]\ncompany = "company"\n', "not an Ortto field id"),
        ('[extra]\na = "str::first"\n', "unknown table [extra]"),
        ("[fields\n", "not valid TOML"),
    ],
)
def test_bad_maps_are_refused(tmp_path, text, message):
    path = tmp_path / "fields.toml"
    path.write_text(text)
    with pytest.raises(FieldMapError, match=message.replace("[", r"\[")):
        load_field_map(path)


@pytest.mark.parametrize(
    "value, text",
    [
        ("Jane", "Jane"), ("", None), (None, None), (True, "1"), (False, "0"), (42000, "42000"),
        ({"c": "61", "n": "401234567"}, "+61401234567"), ({"n": "5550100"}, "5550100"),
        ({"name": "Sydney"}, "Sydney"), ({"year": 1980, "month": 3, "day": 4, "timezone": "UTC"}, "1980-03-04"),
        (["a", "b"], "a, b"), ({"unknown": 1}, None),
    ],
)
def test_values_become_text(value, text):
    assert to_text(value) == text


def test_create_only_fields_are_left_out_of_updates():
    field_map = FieldMap(fields={"user_login": "str:cm:u", "user_pass": "str:cm:p", "nickname": "str::first"})
    contact = {"str:cm:u": "login", "str:cm:p": "secret", "str::first": "Jo"}
    assert field_map.user_values(contact, creating=True) == {"username": "login", "password": "secret", "nickname": "Jo"}
    assert field_map.user_values(contact, creating=False) == {"nickname": "Jo"}


def test_ortto_fields_include_email_names_tags_once():
    field_map = FieldMap(fields={"first_name": "str::first"}, meta={"city": "geo::city"})
    assert field_map.ortto_fields() == ["str::email", "str::first", "str::last", "geo::city", "tags"]
