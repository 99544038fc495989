"""In-process metrics, exposed in the Prometheus text format by the HTTP server's /metrics.

`Metrics` is the small object the worker and the deliverer update. It keeps prometheus_client's
counters and histogram in a registry of its own (never the library's global one, so two bots
or tests in one process count apart); the gauges are read from the state at each scrape.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.rejections import Rejection

# Send latency buckets, seconds: from a local print to a platform's slow answer.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# What `generate_latest` writes: Prometheus' classic text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class StateGauges:
    """Read from the state at scrape time."""

    deliveries: Mapping[tuple[str, str], int]  # (platform, state) -> rows
    parked_subscriptions: int
    store_lag_s: float  # age of the oldest file the worker has not processed yet; 0 when idle
    heartbeat_age_s: float
    oldest_pending_age_s: float = 0.0  # how long the oldest waiting delivery has waited


class _StateCollector(Collector):
    """The gauges of the latest scrape's `StateGauges`: a state with no rows left disappears
    instead of staying at its last value."""

    def __init__(self) -> None:
        self.latest: StateGauges | None = None

    def collect(self) -> Iterator[Metric]:
        gauges = self.latest
        if gauges is None:
            return
        deliveries = GaugeMetricFamily(
            "newsbot_deliveries", "Outbox rows by platform and state.",
            labels=("platform", "state"),
        )
        for (platform, state), rows in sorted(gauges.deliveries.items()):
            deliveries.add_metric((platform, state), rows)
        yield deliveries
        yield GaugeMetricFamily(
            "newsbot_parked_subscriptions",
            "Subscriptions paused because their channel refused us.",
            value=gauges.parked_subscriptions,
        )
        yield GaugeMetricFamily(
            "newsbot_store_lag_seconds",
            "Age of the newest store change not yet processed (0 when caught up).",
            value=gauges.store_lag_s,
        )
        yield GaugeMetricFamily(
            "newsbot_heartbeat_age_seconds", "Seconds since the worker last made progress.",
            value=gauges.heartbeat_age_s,
        )
        yield GaugeMetricFamily(
            "newsbot_oldest_pending_delivery_age_seconds",
            "How long the oldest delivery still waiting has waited (0 when none waits).",
            value=gauges.oldest_pending_age_s,
        )


class Metrics:
    """What the running bot counts. One instance, passed in to whoever counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._parsed = Counter(
            "newsbot_articles_parsed_total", "Article files parsed successfully.",
            registry=registry,
        )
        self._bad_files = Counter(
            "newsbot_bad_files_total", "Article files rejected, with a reason logged.",
            registry=registry,
        )
        self._outcomes = Counter(
            "newsbot_delivery_outcomes_total", "Send attempts by platform and outcome.",
            ("outcome", "platform"), registry=registry,
        )
        self._rate_limited = Counter(
            "newsbot_rate_limited_total", "429 answers by platform.", ("platform",),
            registry=registry,
        )
        self._send_latency = Histogram(
            "newsbot_send_latency_seconds", "Time a platform took to accept a post.",
            ("platform",), buckets=LATENCY_BUCKETS_S, registry=registry,
        )
        self._rejected = Counter(
            "newsbot_http_rejected_total", "HTTP requests refused, by reason.", ("reason",),
            registry=registry,
        )
        for reason in Rejection:  # every reason from 0, so that a rate can be taken at once
            self._rejected.labels(reason=reason.value)
        self._state = _StateCollector()
        registry.register(self._state)

    def count_parsed(self, files: int = 1) -> None:
        self._parsed.inc(files)

    def count_bad_file(self) -> None:
        self._bad_files.inc()

    def observe_send(self, platform: str, outcome: str, latency_s: float) -> None:
        self._outcomes.labels(outcome=outcome, platform=platform).inc()
        self._send_latency.labels(platform=platform).observe(latency_s)

    def count_rate_limit(self, platform: str) -> None:
        self._rate_limited.labels(platform=platform).inc()

    def count_rejection(self, reason: Rejection) -> None:
        self._rejected.labels(reason=reason.value).inc()


def render_prometheus(metrics: Metrics, gauges: StateGauges) -> str:
    """Everything `metrics` counts, and `gauges` as the state's figures, in the text format."""
    metrics._state.latest = gauges  # read at once below: no scrape sees another's figures
    return generate_latest(metrics.registry).decode("utf-8")
