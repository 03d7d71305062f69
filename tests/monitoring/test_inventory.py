"""docs/metrics.md lists every metric the services and SDK connectors register, with its type
and labels: a metric added in code and not documented (or documented with other labels, or
documented and gone) fails here."""

from __future__ import annotations

import importlib
import re

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from tests.conftest import ROOT

APPS = ("gateway.app", "connector_service.app", "marketplace_service.app", "seedos_sdk.server",
        "seedos_sdk.declarative.server")  # fmt: skip
ROW = re.compile(r"^\| `(seedos_\w+)` \| (\w+)[^|]* \|([^|]*)\|", re.MULTILINE)


def registered() -> dict[str, tuple[str, set[str]]]:
    """Exposed name (counters with ``_total``) -> type and label names, after importing every
    app: what their /metrics can show."""
    for module in APPS:
        importlib.import_module(module)
    found = {}
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase) and collector._name.startswith("seedos_"):
            name = collector._name + ("_total" if collector._type == "counter" else "")
            found[name] = (collector._type, set(collector._labelnames))
    return found


def documented() -> dict[str, tuple[str, set[str]]]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    return {
        name: (kind, set(re.findall(r"`(\w+)`", labels)))
        for name, kind, labels in ROW.findall(text)
    }


def test_every_registered_metric_is_documented_with_its_type_and_labels():
    code, docs = registered(), documented()
    assert len(code) > 40
    missing = sorted(code.keys() - docs.keys())
    assert not missing, f"docs/metrics.md does not list {missing}"
    stale = sorted(docs.keys() - code.keys())
    assert not stale, f"docs/metrics.md lists metrics nothing registers: {stale}"
    wrong = {name: (code[name], docs[name]) for name in code if code[name] != docs[name]}
    assert not wrong, f"type or labels differ (code, docs): {wrong}"


def test_no_label_is_an_id():
    for name, (_kind, labels) in registered().items():
        assert not {"tenant", "tenant_id", "install", "integration_id", "user", "request_id",
                    "endpoint", "record"} & labels, name  # fmt: skip
