"""A real WordPress for the tests: Debian's ``wordpress`` package, MariaDB and ``php -S``.

Each site gets its own database and copy of WordPress, the companion plugin as a must-use
plugin, an administrator with an application password, a ``customer`` role, and a
``sendmail_path`` that files every email WordPress sends so tests can read them.
"""
from __future__ import annotations

import base64
import collections
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

WORDPRESS_SOURCE = Path("/usr/share/wordpress")

# Loads WordPress for an installation step run with php -f (after that step's own define()).
LOAD_FOR_INSTALL = r"""
$_SERVER['HTTP_HOST'] = getenv('WP_TEST_HOST');
$_SERVER['REQUEST_URI'] = '/';
require __DIR__ . '/wp-load.php';
require ABSPATH . 'wp-admin/includes/upgrade.php';
"""

INSTALL_PHP = "<?php define('WP_INSTALLING', true);" + LOAD_FOR_INSTALL + r"""
$result = wp_install('wpf-bridge test site', 'admin', 'admin@example.test', false, '', getenv('WP_TEST_ADMIN_PASSWORD'));
add_role('customer', 'Customer', array('read' => true));
add_role('member', 'Member', array('read' => true));
list($password) = WP_Application_Passwords::create_new_application_password($result['user_id'], array('name' => 'wpf-bridge'));
echo json_encode(array('user_id' => $result['user_id'], 'app_password' => $password));
"""

# Test-only must-use plugin: grant the capabilities listed in a user's wpf_test_granted_caps meta
# through a user_has_cap filter, as membership plugins do; hold the next request that reaches a point (right after core REST
# inserted a new user, before its roles and meta; or just before the new-user email is built), so
# that a test can kill WordPress at that exact point; or make one query fail in the next user write.
# Also what other plugins do to users: meta added as a user registers, a sanitize filter on a key,
# roles only an administrator may give.
FAULTS_PHP = r"""<?php
function wpf_test_hold($point) {
    $flag = WPF_TEST_FAULT_DIR . "/hold-$point";
    if (file_exists($flag)) {
        unlink($flag);
        touch(WPF_TEST_FAULT_DIR . "/held-$point");
        sleep(60);
    }
}
add_action('rest_insert_user', function ($user, $request, $creating) {
    if ($creating) {
        wpf_test_hold('after-insert');
    }
    $flag = WPF_TEST_FAULT_DIR . '/fail-query';
    if (file_exists($flag)) {  // a query fails mid-write, as a deadlock victim's would; WordPress ignores it
        unlink($flag);
        $GLOBALS['wpdb']->query('SELECT wpf_test_no_such_column FROM ' . $GLOBALS['wpdb']->users);
    }
    $flag = WPF_TEST_FAULT_DIR . '/crash';
    if (file_exists($flag)) {  // PHP dies mid-write, as core's create does when a deadlock took its user
        $skip = (int) file_get_contents($flag);  // after letting this many writes through
        if ($skip > 0) {
            file_put_contents($flag, (string) ($skip - 1));
        } else {
            unlink($flag);
            wpf_test_no_such_function();
        }
    }
}, 10, 3);
add_action('retrieve_password_key', function () {
    wpf_test_hold('before-email');
});
add_filter('user_has_cap', function ($allcaps, $caps, $args, $user) {  // a plugin granting capabilities at run time
    $granted = get_user_meta($user->ID, 'wpf_test_granted_caps', true);
    return is_array($granted) ? array_merge($allcaps, array_fill_keys($granted, true)) : $allcaps;
}, 10, 4);
add_filter('insert_user_meta', function ($meta) {  // the users row is written, its meta not yet
    wpf_test_hold('after-row');
    return $meta;
});
add_action('user_register', function ($id) {  // another plugin adding meta to a new user (for test_creates)
    if (0 === strpos(get_userdata($id)->user_login, 'whole-')) {
        add_user_meta($id, 'wpf_test_registered', 'a plugin');
    }
});
add_filter('sanitize_user_meta_wpf_test_shout', function ($value) {  // another plugin's sanitize filter
    return $value . '!';
});
add_filter('editable_roles', function ($roles) {  // as role-manager plugins do: only administrators make administrators
    return current_user_can('manage_options') ? $roles : array_diff_key($roles, array('administrator' => true));
});
"""

# Turns the installed site into a network of sites (multisite, sub-directories).
NETWORK_PHP = "<?php define('WP_INSTALLING_NETWORK', true);" + LOAD_FOR_INSTALL + r"""
foreach ($wpdb->tables('ms_global') as $table => $prefixed) { $wpdb->$table = $prefixed; }
install_network();
$result = populate_network(1, getenv('WP_TEST_HOST'), 'admin@example.test', 'wpf-bridge test network', '/', false);
if (is_wp_error($result)) { fwrite(STDERR, $result->get_error_message()); exit(1); }
"""

WP_APP_PASSWORDS_IN_USE = "using_application_passwords"
NETWORK_CONFIG = """define('MULTISITE', true);
define('SUBDOMAIN_INSTALL', false);
define('DOMAIN_CURRENT_SITE', '{host}');
define('PATH_CURRENT_SITE', '/');
define('SITE_ID_CURRENT_SITE', 1);
define('BLOG_ID_CURRENT_SITE', 1);
"""

SENDMAIL = """#!/bin/sh
cat > "{mail_dir}/$(date +%s%N)-$$.eml"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mariadb(sql: str) -> None:
    subprocess.run(["mariadb", "-uroot", "-h127.0.0.1", "-e", sql], check=True, capture_output=True)


class WordPressSite:
    def __init__(self, plugin_source: str | None, multisite: bool = False, folder: str = "", permalinks: str = ""):
        """``folder``: WordPress in a sub-folder of the site (``blog``: http://host/blog); ``permalinks``:
        a permalink structure (``/%postname%/``) instead of WordPress's plain ``?p=`` links."""
        self.plugin_source = plugin_source
        self.multisite = multisite
        self.permalinks = permalinks
        self.root = Path(tempfile.mkdtemp(prefix="wpf-wordpress-"))
        self.served = self.root / "wordpress"
        self.docroot = self.served / folder if folder else self.served
        self.mail_dir = self.root / "mail"
        self.database = "wpf_test_" + secrets.token_hex(4)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}" + (f"/{folder}" if folder else "")
        self.admin_user = "admin"
        self.admin_password = secrets.token_urlsafe(12)
        self.app_password = ""
        self.process: subprocess.Popen | None = None

    def start(self) -> WordPressSite:
        shutil.copytree(WORDPRESS_SOURCE, self.docroot, symlinks=False)
        self.mail_dir.mkdir()
        sendmail = self.root / "sendmail.sh"
        sendmail.write_text(SENDMAIL.format(mail_dir=self.mail_dir))
        sendmail.chmod(0o755)
        self._write_config()
        mu = self.docroot / "wp-content" / "mu-plugins"
        mu.mkdir(parents=True, exist_ok=True)
        (mu / "wpf-test-faults.php").write_text(FAULTS_PHP)
        if self.plugin_source is not None:
            (mu / "wpf-bridge.php").write_text(self.plugin_source)
        mariadb(f"create database {self.database}")
        install = self.docroot / "wpf-install.php"
        install.write_text(INSTALL_PHP)
        env = {**os.environ, "WP_TEST_HOST": f"127.0.0.1:{self.port}", "WP_TEST_ADMIN_PASSWORD": self.admin_password}
        out = subprocess.run(self._php("-f", str(install)), env=env, check=True, capture_output=True, text=True).stdout
        install.unlink()
        self.app_password = json.loads(out[out.index("{"):])["app_password"]
        if self.multisite:
            network = self.docroot / "wpf-network.php"
            network.write_text(NETWORK_PHP)
            subprocess.run(self._php("-f", str(network)), env=env, check=True, capture_output=True, text=True)
            network.unlink()
            self._write_config(NETWORK_CONFIG.format(host=f"127.0.0.1:{self.port}"))
            # the network keeps its own "application passwords in use" flag; the site's was set above
            self.php_eval(f"update_site_option({WP_APP_PASSWORDS_IN_USE!r}, true);")
        if self.permalinks:
            self.php_eval(f"update_option('permalink_structure', {self.permalinks!r}); flush_rewrite_rules();")
        self.start_server()
        return self

    def start_server(self) -> None:
        """Serve the site (again) on its port."""
        self.process = subprocess.Popen(
            self._php("-S", f"127.0.0.1:{self.port}", "-t", str(self.served)),
            env={**os.environ, "PHP_CLI_SERVER_WORKERS": "4"},
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "php-server.log", "ab"),
            cwd=self.docroot,
            start_new_session=True,
        )
        self._wait_until_up()

    def kill_server(self) -> None:
        """kill -9 the web server and its PHP workers, mid-request if there is one: WordPress is down."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def hold_next(self, point: str) -> Callable[[], bool]:
        """Hold the next request reaching ``point`` (``after-insert``, ``after-row``, ``before-email``) for 60 s;
        returns "is it held now?"."""
        (self.root / f"held-{point}").unlink(missing_ok=True)
        (self.root / f"hold-{point}").touch()
        return (self.root / f"held-{point}").exists

    def fail_next_query(self) -> None:
        """Make one database query fail in the next REST user write, after core wrote the user."""
        (self.root / "fail-query").touch()

    def crash_next_write(self, after: int = 0) -> None:
        """Make PHP die of a fatal error in the next REST user write (after letting ``after`` writes
        through), once core wrote the user."""
        (self.root / "crash").write_text(str(after))

    def stop(self) -> None:
        self.kill_server()
        mariadb(f"drop database if exists {self.database}")
        shutil.rmtree(self.root, ignore_errors=True)

    def _php(self, *args: str) -> list[str]:
        return ["php", "-d", f"sendmail_path={self.root / 'sendmail.sh'}", "-d", "display_errors=stderr", *args]

    def _write_config(self, extra: str = "") -> None:
        salts = "\n".join(
            f"define('{name}', '{secrets.token_hex(32)}');"
            for name in ("AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
                         "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT")
        )
        (self.docroot / "wp-config.php").write_text(f"""<?php
define('DB_NAME', '{self.database}');
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', '127.0.0.1');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{salts}
define('WP_ENVIRONMENT_TYPE', 'local');
define('WPF_TEST_FAULT_DIR', '{self.root}');
define('WP_HOME', '{self.url}');
define('WP_SITEURL', '{self.url}');
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_CONTENT_DIR', __DIR__ . '/wp-content');
{extra}$table_prefix = 'wp_';
if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
""")

    def _wait_until_up(self, deadline: float = 30.0) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"php -S exited: {(self.root / 'php-server.log').read_text()}")
            try:
                if requests.get(self.url + "/?rest_route=/", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError("WordPress did not answer within 30 s")

    # helpers for tests: direct REST access as the administrator, and the captured emails

    def rest(self, method: str, route: str, **kwargs) -> requests.Response:
        params = {"rest_route": route, **kwargs.pop("params", {})}
        kwargs.setdefault("auth", (self.admin_user, self.app_password))
        return requests.request(method, self.url + "/", params=params, timeout=30, **kwargs)

    def users_with_email(self, email: str) -> list[dict]:
        found = self.rest("GET", "/wp/v2/users", params={"search": email, "search_columns[]": "email", "context": "edit"}).json()
        return [u for u in found if u["email"].lower() == email.lower()]

    def user_by_email(self, email: str) -> dict | None:
        return next(iter(self.users_with_email(email)), None)

    def php_eval(self, code: str) -> str:
        """Run PHP inside WordPress (wp-load) for checks REST cannot make, e.g. reading any meta."""
        script = self.root / f"eval-{secrets.token_hex(4)}.php"
        script.write_text(f"<?php\n$_SERVER['HTTP_HOST'] = '127.0.0.1:{self.port}';\n$_SERVER['REQUEST_URI'] = '/';\nrequire '" + str(self.docroot / "wp-load.php") + "';\n" + code)
        try:
            return subprocess.run(self._php("-f", str(script)), check=True, capture_output=True, text=True).stdout
        finally:
            script.unlink()

    def add_user(self, role: str, app_password_name: str = "laptop") -> dict:
        """A new user with ``role`` and an application password: {id, login, email, app_password}."""
        login = f"{role}-{secrets.token_hex(4)}"
        data = base64.b64encode(json.dumps({"login": login, "role": role, "app": app_password_name}).encode()).decode()
        out = self.php_eval(
            f"$d = json_decode(base64_decode('{data}'), true);"
            " $id = wp_insert_user(array('user_login' => $d['login'], 'user_email' => $d['login'] . '@example.test',"
            " 'user_pass' => wp_generate_password(), 'role' => $d['role']));"
            " list($p) = WP_Application_Passwords::create_new_application_password($id, array('name' => $d['app']));"
            " echo json_encode(array('id' => $id, 'app_password' => $p));"
        )
        return {**json.loads(out[out.index("{"):]), "login": login, "email": f"{login}@example.test"}

    def add_role(self, name: str, capabilities: list[str]) -> None:
        caps = base64.b64encode(json.dumps(capabilities).encode()).decode()
        self.php_eval(f"remove_role('{name}'); add_role('{name}', '{name}', array_fill_keys(json_decode(base64_decode('{caps}')), true));")

    def database_rows(self) -> list[list[str]]:
        """Every row of wp_users and wp_usermeta, to show that an attempt changed nothing."""
        out = subprocess.run(
            ["mariadb", "-uroot", "-h127.0.0.1", "-N", "-B", self.database, "-e",
             "select 'user', ID, user_login, user_pass, user_email, display_name from wp_users order by ID;"
             " select 'meta', umeta_id, user_id, meta_key, meta_value from wp_usermeta order by umeta_id"],
            check=True, capture_output=True, text=True,
        ).stdout
        return [line.split("\t") for line in out.splitlines()]

    @contextlib.contextmanager
    def recording_outbox(self, new: bool = True, roles: bool = True, fields=(), meta=()) -> Iterator[None]:
        """The companion plugin records changes in its outbox, as after the bridge's /outbox/watch
        with these (the administrator as the bridge's user); afterwards it records nothing, and the
        rows are gone."""
        watched = base64.b64encode(json.dumps({"user": 1, "new": new, "roles": roles, "fields": list(fields),
                                               "meta": list(meta)}).encode()).decode()
        self.php_eval("wpf_bridge_outbox_install();"
                      f" update_site_option('wpf_bridge_watch', json_decode(base64_decode('{watched}'), true));")
        try:
            yield
        finally:
            self.php_eval("delete_site_option('wpf_bridge_watch'); global $wpdb;"
                          " $wpdb->query('DELETE FROM ' . wpf_bridge_outbox_table());")

    def outbox_state(self) -> dict:
        """The outbox's rows (None: no table) and what it records."""
        return json.loads(self.php_eval(
            "global $wpdb; echo json_encode(array('rows' => wpf_bridge_outbox_exists() ? $wpdb->get_results("
            "'SELECT * FROM ' . wpf_bridge_outbox_table() . ' ORDER BY id', ARRAY_A) : null,"
            " 'watch' => get_site_option('wpf_bridge_watch')));"))

    def mail_files(self) -> set[str]:
        return {p.name for p in self.mail_dir.glob("*.eml")}

    def user_meta(self, user_id: int, key: str):
        key64 = base64.b64encode(key.encode()).decode()
        return json.loads(self.php_eval(f"echo json_encode(get_user_meta({int(user_id)}, base64_decode('{key64}'), true));"))

    def accounts(self, emails: list[str]) -> dict[str, list[dict]]:
        """Every user with each email (read in one PHP run): id, login, roles, password hash, first name
        and when the companion plugin began its new-user email."""
        data = base64.b64encode(json.dumps(emails).encode()).decode()
        return json.loads(self.php_eval(
            f"$out = array(); foreach (json_decode(base64_decode('{data}')) as $e) {{"
            " global $wpdb; $rows = $wpdb->get_results($wpdb->prepare("
            "\"SELECT ID FROM $wpdb->users WHERE user_email = %s\", $e));"
            " $out[$e] = array_map(function ($r) { $u = get_userdata($r->ID); return array("
            "'id' => $u->ID, 'login' => $u->user_login, 'roles' => array_values($u->roles), 'pass' => $u->user_pass,"
            " 'first_name' => $u->first_name, 'notified' => get_user_meta($u->ID, 'wpf_bridge_notified', true)); }, $rows); }"
            " echo json_encode((object) $out);"
        ))

    def logins(self, pairs: dict[str, str]) -> dict[str, bool]:
        """Whether each email logs in with its password (one PHP run)."""
        data = base64.b64encode(json.dumps(pairs).encode()).decode()
        return json.loads(self.php_eval(
            f"$out = array(); foreach (json_decode(base64_decode('{data}'), true) as $e => $p) {{"
            " $out[$e] = !is_wp_error(wp_authenticate($e, $p)); } echo json_encode((object) $out);"
        ))

    def mail_count(self) -> collections.Counter[str]:
        """How many emails WordPress sent to each address."""
        counts: collections.Counter[str] = collections.Counter()
        for message in self.mail_dir.glob("*.eml"):
            for line in message.read_text(errors="replace").splitlines():
                if line.startswith("To: "):
                    counts[line[4:].strip()] += 1
                    break
        return counts

    def emails_to(self, address: str) -> list[str]:
        return [p.read_text(errors="replace") for p in sorted(self.mail_dir.glob("*.eml"))
                if f"To: {address}" in p.read_text(errors="replace")]

    def grant_at_run_time(self, user_id: int, capabilities: list[str]) -> None:
        """Make a ``user_has_cap`` filter (the test must-use plugin's) grant ``capabilities`` to the
        user: held as WordPress's ``user_can()`` answers, in no role and in no capability list."""
        caps = base64.b64encode(json.dumps(capabilities).encode()).decode()
        self.php_eval(f"update_user_meta({int(user_id)}, 'wpf_test_granted_caps', json_decode(base64_decode('{caps}')));")

    def add_site(self, path: str) -> int:
        """A new site of the network at ``/path/``; its id."""
        return int(self.php_eval(
            f"$id = wp_insert_site(array('domain' => '127.0.0.1:{self.port}', 'path' => '/{path}/', 'title' => '{path}'));"
            " echo is_wp_error($id) ? $id->get_error_message() : $id;").strip())

    def add_to_site(self, site: int, user_id: int, role: str) -> None:
        self.php_eval(f"add_user_to_blog({int(site)}, {int(user_id)}, '{role}');")
