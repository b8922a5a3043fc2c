"""How the companion plugin makes the bridge's user creates cheap and safe side by side: the role set
as the users row is written, the site's user count refreshed after the commit (once per batch),
and a new user's meta added directly. Each user must come out as core alone would have made it.
Real WordPress, the bridge's credential."""
from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

from conftest import unique_email

from wpf_bridge.accounts import User
from wpf_bridge.clients.wordpress import WordPressClient


def new_user(email: str, **meta: object) -> tuple[None, dict]:
    return None, {"username": email, "email": email, "password": "Xx-123456789-long", "roles": ["customer"],
                  "first_name": "Side", "last_name": "By", "wpf_meta": {"ortto_contact_id": email, **meta}}


def meta_rows(wordpress, user_id: int) -> list[tuple[str, str]]:
    """(meta_key, meta_value) of every wp_usermeta row of the user, as MariaDB holds them."""
    out = subprocess.run(
        ["mariadb", "-uroot", "-h127.0.0.1", "-N", "-B", "-r", wordpress.database, "-e",
         f"select meta_key, meta_value from wp_usermeta where user_id = {int(user_id)} order by umeta_id"],
        check=True, capture_output=True, text=True).stdout
    return [tuple(line.split("\t", 1)) for line in out.splitlines()]  # type: ignore[misc]


def test_creates_side_by_side_all_go_through_without_deadlocks(wordpress):
    """Four batches of 40 new users at once. Before 1.5.0 each create locked its wp_capabilities
    row (through the meta_key index) and the user_count option until its commit, and such batches
    died of InnoDB deadlocks, to be sent again."""
    client = WordPressClient(wordpress.url, wordpress.admin_user, wordpress.app_password)
    batches = [[new_user(unique_email(f"side{b}")) for _ in range(40)] for b in range(4)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda batch: _outcome(client, batch), batches))

    failures = [answer for batch in answers for answer in batch if not isinstance(answer, User)]
    assert failures == []
    made = wordpress.accounts([values["email"] for batch in batches for _, values in batch])
    assert {len(users) for users in made.values()} == {1}
    assert {tuple(users[0]["roles"]) for users in made.values()} == {("customer",)}


def _outcome(client: WordPressClient, batch: list) -> list:
    try:
        return client.write_many(batch)
    except Exception as exc:  # the batch refused as a whole: each of its writes failed
        return [exc] * len(batch)


def test_a_created_user_holds_its_role_alone_and_each_meta_key_once_as_written(wordpress):
    """Set as the users row is written, not added afterwards: the role is the only one, the user
    level matches it, and every meta key (core's, another plugin's, the bridge's) is there once
    with the value given, backslashes and quotes included."""
    client = WordPressClient(wordpress.url, wordpress.admin_user, wordpress.app_password)
    tricky = "C:\\path\\to 'it' \"quoted\" \\\\ end"
    email = unique_email("whole")
    (user,) = client.write_many([new_user(email, company=tricky, wpf_test_registered="the bridge's")])
    assert isinstance(user, User)

    rows = meta_rows(wordpress, user.id)
    keys = [key for key, _ in rows]
    assert sorted(keys) == sorted(set(keys)), f"a key written twice: {keys}"
    values = dict(rows)
    assert values["wp_capabilities"] == 'a:1:{s:8:"customer";b:1;}'
    assert values["wp_user_level"] == "0"
    assert values["company"] == tricky
    assert values["wpf_test_registered"] == "the bridge's"  # added by a user_register hook first, then updated
    assert values["first_name"] == "Side" and values["nickname"] == email

    core = wordpress.php_eval(
        "$id = wp_insert_user(array('user_login' => 'core-" + email + "', 'user_email' => 'core-" + email + "',"
        " 'user_pass' => 'Xx-123456789-long', 'role' => 'customer')); echo $id;").strip()
    core_keys = {key for key, _ in meta_rows(wordpress, int(core))}
    assert core_keys <= set(keys), f"core writes keys the bridge's create lacks: {core_keys - set(keys)}"


def test_a_meta_key_with_a_sanitize_filter_is_sanitized_once(wordpress):
    """A plugin's sanitize filter on a key (here: appending "!") runs once, as core runs it."""
    client = WordPressClient(wordpress.url, wordpress.admin_user, wordpress.app_password)
    (user,) = client.write_many([new_user(unique_email("shout"), wpf_test_shout="hello")])
    assert isinstance(user, User)
    assert dict(meta_rows(wordpress, user.id))["wpf_test_shout"] == "hello!"


def test_the_site_s_user_count_follows_the_bridge_s_creates(wordpress):
    """Refreshed after the commit (once per batch) instead of inside each create's transaction."""
    client = WordPressClient(wordpress.url, wordpress.admin_user, wordpress.app_password)
    assert all(isinstance(u, User) for u in client.write_many([new_user(unique_email("count")) for _ in range(3)]))
    alone = client.create_user(new_user(unique_email("count"))[1])
    assert isinstance(alone, User)

    counted = wordpress.php_eval(
        "global $wpdb; echo get_user_count(), ' ', $wpdb->get_var(\"SELECT COUNT(ID) FROM $wpdb->users\");").split()
    assert counted[0] == counted[1]
