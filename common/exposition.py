"""The Prometheus text format of a registry, as prometheus-client's ``generate_latest`` writes
it, with each series' name-and-labels text kept between scrapes.

``generate_latest`` escapes and joins every sample's labels anew at each scrape: about 15 µs a
sample, most of a scrape's time once connector_service has a few thousand series (1,000
installs over 100 catalog services: bench/metrics_endpoint.py). A series' labels do not change
between scrapes, only its value, so here that text is made once per series and looked up
after. The output is byte for byte ``generate_latest``'s (tests/common/test_exposition.py
compares them); collecting the samples is still the library's.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.utils import floatToGoString

# OpenMetrics-only samples that the text format moves into a gauge of their own, after the rest.
_APART = ("_created", "_gsum", "_gcount")
# generate_latest's renaming of types from OpenMetrics into the text format.
_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_SUFFIX = {"counter": "_total", "info": "_info"}


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _help(name: str, documentation: str) -> str:
    text = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {escape_metric_name(name)} {text}\n"


class Renderer:
    """Renders registries in the text format; safe to call from several threads at once."""

    def __init__(self, *, max_series: int = 200_000) -> None:
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._max_series = max_series
        self._lock = threading.Lock()

    def render(self, registry: CollectorRegistry) -> bytes:
        series = self._series
        out: list[str] = []
        for metric in registry.collect():
            name, kind = metric.name, metric.type
            shown = name + _SUFFIX.get(kind, "")
            out.append(_help(shown, metric.documentation))
            out.append(f"# TYPE {escape_metric_name(shown)} {_TYPES.get(kind, kind)}\n")
            apart: dict[str, list[str]] = {}
            apart_names = {name + suffix: suffix for suffix in _APART}
            for sample in metric.samples:
                key = (sample.name, tuple(sample.labels.items()))
                prefix = series.get(key)
                if prefix is None:
                    prefix = self._remember(key)
                line = prefix + floatToGoString(sample.value)
                if sample.timestamp is not None:
                    line += f" {int(float(sample.timestamp) * 1000):d}"
                suffix = apart_names.get(sample.name)
                if suffix is None:
                    out.append(line + "\n")
                else:
                    apart.setdefault(suffix, []).append(line + "\n")
            for suffix, lines in sorted(apart.items()):
                out.append(_help(name + suffix, metric.documentation))
                out.append(f"# TYPE {escape_metric_name(name + suffix)} gauge\n")
                out.extend(lines)
        return "".join(out).encode("utf-8")

    def _remember(self, key: tuple[str, tuple[tuple[str, str], ...]]) -> str:
        name, labels = key
        text = escape_metric_name(name)
        if labels:
            pairs = ",".join(
                f'{escape_label_name(k)}="{_escape_value(v)}"' for k, v in sorted(labels)
            )
            text += "{" + pairs + "}"
        text += " "
        with self._lock:
            if len(self._series) >= self._max_series:  # label sets are bounded; this is a guard
                self._series.clear()
            self._series[key] = text
        return text
