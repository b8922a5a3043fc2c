"""Prometheus figures. Counters and histograms are written where they happen (web, worker, HTTP
clients); gauges about deliveries are read from the store when ``/metrics`` is scraped, so they are
right whichever process or host applied the deliveries.

The web process runs several gunicorn workers and the worker is another process: with
``WPF_METRICS_TOKEN`` set, every process of one host writes its figures to one directory
(prometheus_client's multiprocess mode) and ``/metrics`` adds them up. ``metrics_folder.prepare``
must run before this module is imported, which the ``web`` and ``worker`` commands do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .store import STATUSES, StoreUnavailable

WEBHOOKS = Counter(
    "wpf_bridge_webhooks_received_total", "Webhook calls received, by how they were answered", ["result"]
)
ATTEMPTS = Counter(
    "wpf_bridge_delivery_attempts_total",
    "Runs of a delivery's action or password push, by outcome",
    ["action", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "wpf_bridge_delivery_attempt_duration_seconds",
    "Time one run of a delivery took",
    ["action"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PEER_SECONDS = Histogram(
    "wpf_bridge_peer_request_duration_seconds",
    "WordPress and Ortto requests, by status class",
    ["peer", "status_class"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class StoreCollector(Collector):
    """Gauges read from the delivery store at scrape time: two reads (``health``, ``counts``),
    not the console's whole overview."""

    def __init__(self, store):
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            figures, counts = self.store.health(), self.store.counts()
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
        if figures["worker_beat"]:
            yield GaugeMetricFamily(
                "wpf_bridge_worker_heartbeat_timestamp_seconds",
                "The latest heartbeat of any worker process",
                value=figures["worker_beat"],
            )


def status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status else "error"
