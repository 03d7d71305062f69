"""The alerts' Prometheus metrics (labels bounded: severity, metric; never tenant or install)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from connector_service.alerts.detector import CRITICAL, METRICS, WARNING

SEVERITIES = (WARNING, CRITICAL)

# Counted from connector_alerts by whichever process evaluated last: with several workers or
# replicas the most recent value is the right one, not their sum.
OPEN = Gauge(
    "seedos_connector_alerts_open",
    "Open anomaly alerts on installed connectors, by severity (every tenant's).",
    ["severity"],
    multiprocess_mode="mostrecent",
)
OPENED = Counter(
    "seedos_connector_alerts_opened_total",
    "Anomaly alerts opened, by metric (latency_p95, error_ratio, throughput) and severity.",
    ["metric", "severity"],
)
for _metric in METRICS:  # every series exists from the start, at 0
    for _severity in SEVERITIES:
        OPENED.labels(metric=_metric, severity=_severity)


def set_open(counts: dict[str, int]) -> None:
    for severity in SEVERITIES:
        OPEN.labels(severity=severity).set(counts.get(severity, 0))
