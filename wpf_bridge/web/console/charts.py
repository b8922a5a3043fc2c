"""The overview's charts, drawn here as SVG (the console loads nothing from elsewhere): deliveries
per minute or hour by outcome, and the time from arrival to applied (median and 95th percentile).

Drawn from the store (``store.trends``), so every web process shows the same; each process keeps a
window's figures for ``KEEP_SECONDS``, as a week of deliveries is read whole."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from markupsafe import Markup, escape

from ...store import Store
from ...store.trends import OUTCOMES, Bucket

WIDTH, HEIGHT, LEFT, BOTTOM = 720, 130, 44, 18  # the drawing, and room for the axes' labels
KEEP_SECONDS = 10.0
#: seconds shown, seconds a bar: the last hour shows a burst or an outage of minutes; the day and week, trends
WINDOWS = {"1h": (3600.0, 60.0), "24h": (86400.0, 3600.0), "7d": (7 * 86400.0, 6 * 3600.0)}
TITLES = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days"}

_kept: dict[str, tuple[float, list[Bucket]]] = {}
_lock = threading.Lock()


def trends(store: Store, window: str) -> list[Bucket]:
    """The window's buckets, read again when the kept ones are over a minute old."""
    with _lock:
        at, buckets = _kept.get(window, (0.0, []))
    if time.monotonic() - at > KEEP_SECONDS:
        buckets = store.trends.buckets(*WINDOWS[window])
        with _lock:
            _kept[window] = (time.monotonic(), buckets)
    return buckets


def draw_charts(store: Store) -> dict[str, tuple[Markup, Markup]]:
    """Each window's two charts, from one read of its figures."""
    drawn = {}
    for window in WINDOWS:
        buckets = trends(store, window)
        drawn[window] = (outcomes_chart(buckets, f"{window}-outcomes"), latency_chart(buckets, f"{window}-latency"))
    return drawn


def outcomes_chart(buckets: list[Bucket], name: str) -> Markup:
    """Stacked bars, one a bucket: done, skipped, failed and still waiting, by arrival."""
    top = max((b.total for b in buckets), default=0) or 1
    step = (WIDTH - LEFT) / max(len(buckets), 1)
    parts = []
    for n, bucket in enumerate(buckets):
        x, y = LEFT + n * step, float(HEIGHT - BOTTOM)
        said = ", ".join(f"{bucket.counts[o]} {o}" for o in OUTCOMES) if bucket.total else "nothing arrived"
        parts.append(  # a slot as tall as the chart: an empty hour shows its figures on hover too
            f'<g class="bar"><title>{escape(_span(bucket, buckets))}: {escape(said)}</title>'
            f'<rect class="slot" x="{x:.1f}" y="8" width="{step:.1f}" height="{HEIGHT - BOTTOM - 8}"/>'
        )
        for outcome in OUTCOMES:
            h = (HEIGHT - BOTTOM - 8) * bucket.counts[outcome] / top
            if h:
                y -= h
                parts.append(
                    f'<rect class="{outcome}" x="{x + 0.5:.1f}" y="{y:.1f}" width="{max(step - 1, 1):.1f}" height="{h:.1f}"/>'
                )
        parts.append("</g>")
    return _svg(name, f"deliveries by arrival, per {_per(buckets)}", top, "", buckets, "".join(parts))


def latency_chart(buckets: list[Bucket], name: str) -> Markup:
    """Two lines: the median and the 95th percentile of arrival to applied, by arrival."""
    top = max((b.p95 or 0 for b in buckets), default=0) or 1
    step = (WIDTH - LEFT) / max(len(buckets), 1)
    lines = []
    for which in ("p95", "p50"):
        path, pen = [], "M"
        for n, bucket in enumerate(buckets):
            value = getattr(bucket, which)
            if value is None:
                pen = "M"
                continue
            y = HEIGHT - BOTTOM - (HEIGHT - BOTTOM - 8) * value / top
            path.append(f"{pen}{LEFT + (n + 0.5) * step:.1f},{y:.1f}")
            pen = "L"
        lines.append(f'<path class="{which}" d="{" ".join(path)}"><title>{which}</title></path>' if path else "")
    marks = "".join(  # a point for each figure, so that an hour alone (no line to draw) still shows both
        f'<circle class="{which}" cx="{LEFT + (n + 0.5) * step:.1f}" cy="{HEIGHT - BOTTOM - (HEIGHT - BOTTOM - 8) * value / top:.1f}" r="2.5">'
        f"<title>{escape(_span(b, buckets))}: median {_seconds(b.p50)}, 95th percentile {_seconds(b.p95)}</title></circle>"
        for n, b in enumerate(buckets)
        for which, value in (("p95", b.p95), ("p50", b.p50))
        if value is not None
    )
    return _svg(
        name,
        f"arrival to applied: median and 95th percentile, per {_per(buckets)}",
        top,
        " s",
        buckets,
        "".join(lines) + marks,
    )


def _svg(name: str, label: str, top: float, unit: str, buckets: list[Bucket], drawing: str) -> Markup:
    first = buckets[0].start if buckets else time.time()
    return Markup(
        f'<svg id="chart-{escape(name)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>"
        f'<text class="label" x="{LEFT + 6}" y="14">{escape(label)}</text>'
        f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}"/>'
        f'<text class="tick" x="{LEFT - 4}" y="14" text-anchor="end">{_number(top)}{unit}</text>'
        f'<text class="tick" x="{LEFT - 4}" y="{HEIGHT - BOTTOM}" text-anchor="end">0</text>'
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 4}">{escape(_stamp(first))}</text>'
        f'<text class="tick" x="{WIDTH}" y="{HEIGHT - 4}" text-anchor="end">now</text>'
        f"{drawing}</svg>"
    )


def _span(bucket: Bucket, buckets: list[Bucket]) -> str:
    width = buckets[1].start - buckets[0].start if len(buckets) > 1 else 3600.0
    return f"{_stamp(bucket.start)} to {datetime.fromtimestamp(bucket.start + width).strftime('%H:%M')}"


def _per(buckets: list[Bucket]) -> str:
    minutes = round((buckets[1].start - buckets[0].start) / 60) if len(buckets) > 1 else 60
    if minutes < 60:
        return "minute" if minutes == 1 else f"{minutes} minutes"
    return "hour" if minutes == 60 else f"{minutes // 60} hours"


def _stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment).strftime("%a %H:%M")


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}".rstrip("0").rstrip(".")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{_number(value)} s"
