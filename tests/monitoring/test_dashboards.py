"""The provisioned Grafana dashboards (grafana/dashboards/*.json) have the shape Grafana loads
from files: a unique uid and title, a datasource variable every panel and query goes through,
a service variable, panels with unique ids on the 24-column grid, each with queries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
BUILTIN = {"__rate_interval", "__interval", "__range", "__all"}


def panels_of(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row nests its panels
    return found


def test_the_three_dashboards_are_provisioned():
    uids = {json.loads(p.read_text())["uid"]: p.name for p in DASHBOARDS}
    assert set(uids) == {"seedos-overview", "seedos-connectors", "seedos-sync"}, uids
    titles = [json.loads(p.read_text())["title"] for p in DASHBOARDS]
    assert len(set(titles)) == len(titles)
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text())
    assert provider["providers"][0]["type"] == "file"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_shape(path: Path):
    dashboard = json.loads(path.read_text())
    assert dashboard["id"] is None, "a provisioned dashboard carries no database id"
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["title"]

    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    service = variables["service"]
    assert service["type"] == "query" and service["datasource"]["uid"] == "${datasource}"
    assert re.fullmatch(r"label_values\(\w+, service\)", service["query"]["query"])

    panels = panels_of(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                   for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel.get("description"), panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        targets = panel["targets"]
        assert targets, f"{panel['title']} has no query"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs))
        for target in targets:
            assert target["datasource"]["uid"] == "${datasource}"
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= set(variables) | BUILTIN, f"{panel['title']}: unknown {used}"
