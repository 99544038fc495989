"""In-process metrics, rendered in the Prometheus text format by the HTTP server's /metrics.

Small on purpose: counters and a latency histogram that the worker and the deliverer update,
plus gauges read from the state at scrape time. No client library is needed for this much.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Send latency buckets, seconds: from a local print to a platform's slow answer.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1


@dataclass
class Metrics:
    """What the running bot counts. One instance, passed in to whoever counts."""

    articles_parsed: int = 0
    bad_files: int = 0
    rate_limited: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    outcomes: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    send_latency: dict[str, Histogram] = field(default_factory=dict)

    def observe_send(self, platform: str, outcome: str, latency_s: float) -> None:
        self.outcomes[(platform, outcome)] += 1
        self.send_latency.setdefault(platform, Histogram()).observe(latency_s)

    def count_rate_limit(self, platform: str) -> None:
        self.rate_limited[platform] += 1


@dataclass(frozen=True, slots=True)
class StateGauges:
    """Read from the state at scrape time."""

    deliveries: Mapping[tuple[str, str], int]  # (platform, state) -> rows
    parked_subscriptions: int
    store_lag_s: float  # age of the oldest file the worker has not processed yet; 0 when idle
    heartbeat_age_s: float


def render_prometheus(metrics: Metrics, gauges: StateGauges) -> str:
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    family(
        "newsbot_articles_parsed_total", "counter", "Article files parsed successfully.",
        [("", metrics.articles_parsed)],
    )
    family(
        "newsbot_bad_files_total", "counter", "Article files rejected, with a reason logged.",
        [("", metrics.bad_files)],
    )
    family(
        "newsbot_delivery_outcomes_total", "counter", "Send attempts by platform and outcome.",
        [
            (_labels({"platform": p, "outcome": o}), n)
            for (p, o), n in sorted(metrics.outcomes.items())
        ],
    )
    family(
        "newsbot_rate_limited_total", "counter", "429 answers by platform.",
        [(_labels({"platform": p}), n) for p, n in sorted(metrics.rate_limited.items())],
    )
    family(
        "newsbot_deliveries", "gauge", "Outbox rows by platform and state.",
        [
            (_labels({"platform": p, "state": s}), n)
            for (p, s), n in sorted(gauges.deliveries.items())
        ],
    )
    family(
        "newsbot_parked_subscriptions", "gauge",
        "Subscriptions paused because their channel refused us.",
        [("", gauges.parked_subscriptions)],
    )
    family(
        "newsbot_store_lag_seconds", "gauge",
        "Age of the newest store change not yet processed (0 when caught up).",
        [("", gauges.store_lag_s)],
    )
    family(
        "newsbot_heartbeat_age_seconds", "gauge", "Seconds since the worker last made progress.",
        [("", gauges.heartbeat_age_s)],
    )
    lines.append("# HELP newsbot_send_latency_seconds Time a platform took to accept a post.")
    lines.append("# TYPE newsbot_send_latency_seconds histogram")
    for platform, hist in sorted(metrics.send_latency.items()):
        cumulative = 0
        for bound, count in zip(hist.buckets, hist.counts, strict=True):
            cumulative += count
            labels = _labels({"platform": platform, "le": f"{bound:g}"})
            lines.append(f"newsbot_send_latency_seconds_bucket{labels} {cumulative}")
        labels = _labels({"platform": platform, "le": "+Inf"})
        lines.append(f"newsbot_send_latency_seconds_bucket{labels} {hist.count}")
        lines.append(
            f"newsbot_send_latency_seconds_sum{_labels({'platform': platform})} {hist.total:g}"
        )
        lines.append(
            f"newsbot_send_latency_seconds_count{_labels({'platform': platform})} {hist.count}"
        )
    return "\n".join(lines) + "\n"
