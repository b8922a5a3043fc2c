"""A worker in the test's own process, and Ortto people to feed it: for tests that apply
deliveries one at a time against the real WordPress and the Ortto test server."""
from __future__ import annotations

import base64

from conftest import run_sql, unique_email

from wpf_bridge.store import Store
from wpf_bridge.worker import Runner, Shared


class Bridge:
    """A worker process in the test's own: one Runner, and the pusher run by hand."""

    def __init__(self, settings):
        self.settings = settings
        self.store = Store(settings.database_url)
        self.shared = Shared.build(settings, self.store)
        self.runner = Runner(settings, self.store, self.shared)

    def deliver(self, action, contact_id=None, email=None, role=None, send_notification=False):
        """Store a delivery and run it once, as the worker would, password push included."""
        delivery = self.store.ingest.add(action, contact_id, email, role, send_notification)[0]
        return self.run(delivery)

    def run(self, delivery):
        assert self.runner.run_next()
        self.shared.pusher.push_due()
        return self.store.deliveries.get(delivery.id)

    def rerun(self, delivery):
        """Run it again as the worker would once its retry is due (without waiting for it)."""
        run_sql(self.store, "update deliveries set run_after = 0 where id = :id", id=delivery.id)
        return self.run(delivery)


def person(ortto, email=None, tags=(), **fields):
    email = email or unique_email()
    base = {"str::email": email, "str::first": "Jane", "str::last": "Doe"}
    return ortto.add_person({**base, **fields}, list(tags)), email


def can_log_in(wordpress, login, password):
    login64, password64 = (base64.b64encode(v.encode()).decode() for v in (login, password))
    code = f"$u = wp_authenticate(base64_decode('{login64}'), base64_decode('{password64}')); echo is_wp_error($u) ? 'no' : 'yes';"
    return wordpress.php_eval(code).strip() == "yes"
