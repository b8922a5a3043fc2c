"""``/metrics`` for Prometheus: off unless ``WPF_METRICS_TOKEN`` is set, then only with
``Authorization: Bearer <token>``. Adds up the figures of every process of this host (see
``wpf_bridge.metrics``) and reads the delivery gauges from the store."""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator

from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..metrics_folder import MULTIPROC_ENV
from ..settings import Settings
from ..store import Store, StoreUnavailable
from ..store.outbound import BEHIND, OLDEST
from ..types import STATUSES


def metrics_blueprint(settings: Settings, store: Store) -> Blueprint:
    blueprint = Blueprint("metrics", __name__)
    token = (settings.metrics_token or "").encode()
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:  # one process (the tests' in-process app): its own figures
        registry = CollectorRegistry()
        registry.register(_Default())
    registry.register(StoreCollector(store))

    @blueprint.get("/metrics")
    def metrics() -> Response:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
            return Response(
                "a bearer token is required (WPF_METRICS_TOKEN)\n",
                401,
                {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain"},
            )
        return Response(generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST})

    return blueprint


class _Default:
    """The process's default registry, as one collector of another registry."""

    def collect(self):
        return REGISTRY.collect()


class StoreCollector(Collector):
    """Gauges read from the delivery store at scrape time: a few reads (``health``, ``counts``, marks),
    not the console's whole overview."""

    def __init__(self, store):
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            figures, counts = self.store.figures.health(), self.store.deliveries.counts()
        except StoreUnavailable:
            yield GaugeMetricFamily("wpf_bridge_store_up", "Whether the delivery store could be read", value=0)
            return
        yield GaugeMetricFamily("wpf_bridge_store_up", "Whether the delivery store could be read", value=1)
        now = time.time()
        by_status = GaugeMetricFamily("wpf_bridge_deliveries", "Deliveries in the store, by status", labels=["status"])
        for status in STATUSES:
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status
        oldest = figures["oldest_waiting"]
        yield GaugeMetricFamily(
            "wpf_bridge_oldest_waiting_delivery_age_seconds",
            "Age of the oldest delivery not yet finished (0 when none waits)",
            value=max(0.0, now - oldest) if oldest else 0.0,
        )
        if figures["last_applied"]:
            yield GaugeMetricFamily(
                "wpf_bridge_last_success_timestamp_seconds",
                "When a delivery was last applied (done or skipped)",
                value=figures["last_applied"],
            )
        behind, oldest_change = (self.store.marks.get(name) for name in (BEHIND, OLDEST))
        if behind is not None:  # a worker pulls WordPress's outbox (WordPress -> Ortto is on)
            yield GaugeMetricFamily(
                "wpf_bridge_outbox_behind", "Changes waiting in WordPress's outbox at the last pull", value=behind
            )
            yield GaugeMetricFamily(
                "wpf_bridge_outbox_oldest_age_seconds",
                "Age of the oldest change waiting in WordPress's outbox at the last pull (0 when none)",
                value=max(0.0, now - oldest_change) if oldest_change else 0.0,
            )
        if figures["worker_beat"]:
            yield GaugeMetricFamily(
                "wpf_bridge_worker_heartbeat_timestamp_seconds",
                "The latest heartbeat of any worker process",
                value=figures["worker_beat"],
            )
