"""Prometheus metrics every connector exposes on /metrics. Labels are bounded: connector name,
stream, operation, HTTP method and outcome class; never ids or hosts (a per-tenant subdomain
would make the label set grow without bound)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

OUTBOUND_LATENCY = Histogram(
    "seedos_connector_outbound_request_duration_seconds",
    "Calls to the external API, by connector, method and status class.",
    ["connector", "method", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OUTBOUND_ERRORS = Counter(
    "seedos_connector_outbound_errors",
    "Failed calls to the external API, by connector and error category.",
    ["connector", "category"],
)
RECORDS_READ = Counter(
    "seedos_connector_records_read",
    "Records read from the external system.",
    ["connector", "stream"],
)
RECORDS_DELETED = Counter(
    "seedos_connector_deletions_read",
    "Deletions reported by the external system.",
    ["connector", "stream"],
)
RECORDS_WRITTEN = Counter(
    "seedos_connector_records_written",
    "Records written to the external system, by outcome.",
    ["connector", "stream", "outcome"],
)
CONTRACT_REQUESTS = Histogram(
    "seedos_connector_request_duration_seconds",
    "Contract requests served (check, read, write, action), by operation and outcome.",
    ["connector", "operation", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
