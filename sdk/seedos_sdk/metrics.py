"""Prometheus metrics every connector exposes on /metrics. Labels are bounded: connector name,
stream, operation, HTTP method and outcome class; never ids or hosts (a per-tenant subdomain
would make the label set grow without bound).

A connector run with several uvicorn workers sets ``PROMETHEUS_MULTIPROC_DIR`` to an empty
folder (emptied before each start): each worker writes its values there and ``/metrics``, in
whichever worker answers, serves their sum (:func:`exposition`).
"""

from __future__ import annotations

import functools
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

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


@functools.cache
def registry() -> CollectorRegistry:
    """This process's registry, or every worker's values when ``PROMETHEUS_MULTIPROC_DIR`` is
    set (read from its files at each scrape)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


def exposition() -> tuple[bytes, str]:
    """The ``/metrics`` body and its content type."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST
