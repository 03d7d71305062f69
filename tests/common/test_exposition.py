"""common.exposition renders what prometheus-client's generate_latest renders, byte for byte."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily

from common.exposition import Renderer


class Stamped:
    """A custom collector whose samples carry timestamps, as federating collectors do."""

    def collect(self):
        family = GaugeMetricFamily("stamped_value", "A value with a timestamp.", labels=["k"])
        family.add_metric(["a"], 1.5, timestamp=1_700_000_000.123)
        yield family
        yield GaugeHistogramMetricFamily(
            "queue_age_seconds", "A gauge histogram.", buckets=[("1", 4), ("+Inf", 5)], gsum_value=3
        )


def populated() -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    calls = Counter("calls", "Calls made.\nSecond line \\ with a backslash.", ["service", "op"],
                    registry=registry)  # fmt: skip
    calls.labels("crm", "read").inc(3)
    calls.labels('we"ird\\name\nwith newline', "wr,ite").inc()
    calls.labels("ünïcode", "{}=").inc(0.5)
    Gauge("open", "Open things.", registry=registry).set(7)
    Gauge("nan_and_inf", "Odd values.", ["v"], registry=registry).labels("inf").set(float("inf"))
    latency = Histogram("latency_seconds", "Latency.", ["service"], registry=registry,
                        buckets=(0.01, 0.1, 1))  # fmt: skip
    for value in (0.005, 0.05, 0.5, 5):
        latency.labels("crm").observe(value)
    Summary("sizes", "Sizes.", registry=registry).observe(12)
    Info("build", "Build.", registry=registry).info({"version": "1.0", "commit": "abc"})
    Enum("state", "State.", states=["up", "down"], registry=registry).state("down")
    registry.register(Stamped())
    return registry, calls


def test_the_same_bytes_as_generate_latest():
    registry, calls = populated()
    renderer = Renderer()
    assert renderer.render(registry) == generate_latest(registry)
    # and again with every series' text taken from the cache, a value changed meanwhile
    calls.labels("crm", "read").inc(1e-7)
    assert renderer.render(registry) == generate_latest(registry)


def test_a_full_cache_starts_over_and_still_renders_the_same():
    registry, _ = populated()
    renderer = Renderer(max_series=3)
    assert renderer.render(registry) == generate_latest(registry)
    assert renderer.render(registry) == generate_latest(registry)


def test_each_series_text_is_made_once():
    registry = CollectorRegistry()
    counter = Counter("c", "C.", ["service"], registry=registry)
    for i in range(2_000):
        counter.labels(f"service-{i}").inc()
    renderer = Renderer()
    renderer.render(registry)
    made = dict(renderer._series)
    assert len(made) == 4_000  # _total and _created of each
    counter.labels("service-0").inc()
    assert renderer.render(registry) == generate_latest(registry)
    assert all(renderer._series[key] is text for key, text in made.items())
