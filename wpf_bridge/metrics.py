"""Prometheus figures. Counters and histograms are written where they happen (web, worker, HTTP
clients); gauges about deliveries are read from the store when ``/metrics`` is scraped, so they are
right whichever process or host applied the deliveries (``web.metrics.StoreCollector``).

The web process runs several gunicorn workers and the worker is another process: with
``WPF_METRICS_TOKEN`` set, every process of one host writes its figures to one directory
(prometheus_client's multiprocess mode) and ``/metrics`` adds them up. ``metrics_folder.prepare``
must run before this module is imported, which the ``web`` and ``worker`` commands do.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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


def status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status else "error"
