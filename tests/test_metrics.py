"""bot/metrics.py: the exposition, read back with prometheus_client's own parser."""

from __future__ import annotations

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bot.metrics import Metrics, StateGauges, render_prometheus

IDLE = StateGauges(deliveries={}, parked_subscriptions=0, store_lag_s=0.0, heartbeat_age_s=0.0)


def families(text: str) -> dict[str, tuple[str, list[Sample]]]:
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(text)}


def value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"{name}{labels} not in the metrics")


def test_large_counts_keep_every_digit() -> None:
    metrics = Metrics()
    metrics.count_parsed(1_234_567)
    for _ in range(3):
        metrics.count_bad_file()
    text = render_prometheus(metrics, IDLE)
    # The hand-written format printed 1.23457e+06 (that is, 1234570).
    assert "1.23457e+06" not in text
    assert value(text, "newsbot_articles_parsed_total") == 1_234_567
    assert value(text, "newsbot_bad_files_total") == 3


def test_every_metric_keeps_its_name_type_and_labels() -> None:
    metrics = Metrics()
    metrics.count_parsed()
    metrics.observe_send("slack", "sent", 0.2)
    metrics.observe_send("slack", "retry", 3.0)
    metrics.observe_send("discord", "sent", 0.02)
    metrics.count_rate_limit("slack")
    gauges = StateGauges(
        deliveries={("slack", "sent"): 1, ("slack", "pending"): 4},
        parked_subscriptions=2,
        store_lag_s=1.5,
        heartbeat_age_s=0.25,
        oldest_pending_age_s=42.0,
    )
    text = render_prometheus(metrics, gauges)
    found = families(text)
    # prometheus_client adds `<counter>_created` gauges (when each series began) beside them.
    created = {name for name in found if name.endswith("_created")}
    assert {found[name][0] for name in created} == {"gauge"}
    kinds = {name: kind for name, (kind, _) in found.items() if name not in created}
    assert kinds == {
        "newsbot_articles_parsed": "counter",
        "newsbot_bad_files": "counter",
        "newsbot_delivery_outcomes": "counter",
        "newsbot_rate_limited": "counter",
        "newsbot_http_rejected": "counter",
        "newsbot_send_latency_seconds": "histogram",
        "newsbot_deliveries": "gauge",
        "newsbot_parked_subscriptions": "gauge",
        "newsbot_store_lag_seconds": "gauge",
        "newsbot_heartbeat_age_seconds": "gauge",
        "newsbot_oldest_pending_delivery_age_seconds": "gauge",
    }
    assert value(text, "newsbot_delivery_outcomes_total", platform="slack", outcome="sent") == 1
    assert value(text, "newsbot_delivery_outcomes_total", platform="slack", outcome="retry") == 1
    assert value(text, "newsbot_rate_limited_total", platform="slack") == 1
    assert value(text, "newsbot_send_latency_seconds_count", platform="slack") == 2
    assert value(text, "newsbot_send_latency_seconds_sum", platform="slack") == 3.2
    assert value(text, "newsbot_send_latency_seconds_bucket", platform="slack", le="0.25") == 1
    assert value(text, "newsbot_send_latency_seconds_bucket", platform="slack", le="5.0") == 2
    assert value(text, "newsbot_send_latency_seconds_bucket", platform="discord", le="0.025") == 1
    assert value(text, "newsbot_deliveries", platform="slack", state="pending") == 4
    assert value(text, "newsbot_parked_subscriptions") == 2
    assert value(text, "newsbot_store_lag_seconds") == 1.5
    assert value(text, "newsbot_heartbeat_age_seconds") == 0.25
    assert value(text, "newsbot_oldest_pending_delivery_age_seconds") == 42.0


def test_gauges_are_read_at_each_scrape() -> None:
    metrics = Metrics()
    busy = StateGauges({("slack", "pending"): 3}, 1, 9.0, 1.0)
    first = render_prometheus(metrics, busy)
    assert value(first, "newsbot_deliveries", platform="slack", state="pending") == 3
    second = render_prometheus(metrics, StateGauges({("slack", "sent"): 3}, 0, 0.0, 2.0))
    assert value(second, "newsbot_deliveries", platform="slack", state="sent") == 3
    assert 'state="pending"' not in second  # a state with no rows left is not reported stale
    assert value(second, "newsbot_heartbeat_age_seconds") == 2.0


def test_two_bots_in_one_process_count_apart_and_leave_the_global_registry_alone() -> None:
    one, two = Metrics(), Metrics()
    one.count_parsed(5)
    assert value(render_prometheus(two, IDLE), "newsbot_articles_parsed_total") == 0
    assert value(render_prometheus(one, IDLE), "newsbot_articles_parsed_total") == 5
    names = {f.name for f in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("newsbot") for name in names)
