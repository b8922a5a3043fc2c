"""``/metrics`` for Prometheus: off unless ``WPF_METRICS_TOKEN`` is set, then only with
``Authorization: Bearer <token>``. Adds up the figures of every process of this host (see
``wpf_bridge.metrics``) and reads the delivery gauges from the store."""

from __future__ import annotations

import hmac
import os

from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from ..metrics import StoreCollector
from ..metrics_folder import MULTIPROC_ENV
from ..settings import Settings
from ..store import Store


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
