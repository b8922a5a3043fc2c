"""Hostile input at the webhook endpoint (Hypothesis): never a 5xx, nothing stored for a refusal."""
from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from wpf_bridge.store import migrate_store
from wpf_bridge.web import create_app

_clients = itertools.count()
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
text = st.text(st.characters(codec="utf-8"), max_size=300) | st.sampled_from(
    ["add", "add_user", "update", "update_tags", "test", "customer", "true", "a@example.com", "0061b12ed91681ad2bbe4100"]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
payloads = st.dictionaries(
    st.sampled_from(["contact_id", "email", "id", "contact", "activity", "webhook_id"]) | text, json_values, max_size=6
)
plausible_id = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
params = st.fixed_dictionaries({}, optional={
    "wpf_action": st.sampled_from(["add", "add_user", "update", "update_user", "update_tags", "test"]) | text,
    "role": st.sampled_from(["customer", "administrator"]) | text,
    "send_notification": st.sampled_from(["true", "false"]) | text,
    "contact_id": plausible_id | text,
    "email": st.emails() | text,
})


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, wordpress, ortto_server):
    from wpf_bridge.settings import load_settings

    db = tmp_path_factory.mktemp("fuzz") / "bridge.db"
    env = {
        "WPF_ACCESS_KEY": "fuzz-key-123456", "WORDPRESS_URL": wordpress.url, "WORDPRESS_USER": "admin",
        "WORDPRESS_APP_PASSWORD": wordpress.app_password, "ORTTO_API_KEY": "k", "ORTTO_API_URL": ortto_server.url,
        "DATABASE_URL": f"sqlite:///{db}", "WPF_SECRET_KEY": "fuzz-secret-key-123456",
    }
    migrate_store(env["DATABASE_URL"])
    return create_app(load_settings(env))


def _count(app) -> int:
    return len(app.extensions["wpf_bridge"]["store"].deliveries.find(limit=100000))


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    query=params,
    with_key=st.booleans(),
    body=st.sampled_from(["payload", "payload", "payload", "empty", "bytes", "json"]).flatmap(
        lambda kind: {
            "payload": payloads.map(json.dumps),
            "empty": st.just(""),
            "bytes": st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
            "json": json_values.map(json.dumps),
        }[kind]
    ),
    content_type=st.sampled_from(["application/json", "application/json", "text/plain", "application/x-www-form-urlencoded", None]),
)
def test_no_5xx_and_nothing_stored_for_refused_requests(fuzz_app, query, with_key, body, content_type):
    if with_key:
        query = {**query, "access_key": "fuzz-key-123456"}
    before = _count(fuzz_app)
    client = fuzz_app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.0.{next(_clients) % 250}.{next(_clients) % 250}"  # no key-failure block
    response = client.post("/", query_string=query, data=body.encode("utf-8", "surrogatepass"), content_type=content_type)
    assert response.status_code in (200, 202, 400, 403, 413), response.data
    event(f"HTTP {response.status_code} " + str(response.get_json().get("error", ""))[:40])
    assert response.is_json and response.get_json()["success"] in (True, False)
    after = _count(fuzz_app)
    if response.status_code != 202:
        assert after == before
        return
    assert after == before + (0 if response.get_json()["duplicate"] else 1) and with_key
    delivery = fuzz_app.extensions["wpf_bridge"]["store"].deliveries.get(response.get_json()["delivery_id"])
    assert delivery.action in ("add", "update", "update_tags")
    assert delivery.contact_id or delivery.email
    for value in (delivery.contact_id, delivery.email, delivery.role):
        assert value is None or (len(value) <= 254 and not CONTROL.search(value))


@pytest.mark.parametrize(
    "field, value",
    [("contact_id", "a" * 65), ("contact_id", "abc\tdef"), ("email", "a" * 250 + "@example.com"), ("email", "a\x00b@example.com")],
)
def test_over_long_and_control_character_values_are_400(fuzz_app, field, value):
    before = _count(fuzz_app)
    response = fuzz_app.test_client().post("/?wpf_action=add&access_key=fuzz-key-123456", json={field: value})
    assert response.status_code == 400 and _count(fuzz_app) == before


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    action=st.sampled_from(["add", "add_user", "update", "update_user", "update_tags"]),
    contact_id=st.none() | plausible_id | text,
    email=st.none() | st.emails() | text,
    nested=st.booleans(),
    noise=st.dictionaries(text.filter(lambda k: k not in ("contact_id", "email", "id", "contact", "activity")), json_values, max_size=3),
)
def test_plausible_deliveries_are_stored_as_sent_or_refused(fuzz_app, action, contact_id, email, nested, noise):
    person = {k: v for k, v in {"contact_id": contact_id, "email": email}.items() if v is not None}
    payload = {**noise, "contact": person} if nested else {**noise, **person}
    before = _count(fuzz_app)
    response = fuzz_app.test_client().post(f"/?wpf_action={action}&access_key=fuzz-key-123456", json=payload)
    assert response.status_code in (202, 400), response.data
    event(f"HTTP {response.status_code}")
    if response.status_code == 400:
        assert _count(fuzz_app) == before
        return
    delivery = fuzz_app.extensions["wpf_bridge"]["store"].deliveries.get(response.get_json()["delivery_id"])
    assert delivery.action == action.removesuffix("_user")
    assert delivery.contact_id == (contact_id or None)
    assert delivery.email == (email or None)
